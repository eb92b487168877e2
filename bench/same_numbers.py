"""Do two commits train to the same numbers? Every variant for 3 epochs, one seed and two (and
WGAN-GP compiled), run from a checkout of each commit on this machine; their metrics.csv and
ensemble.csv must be identical but for the seconds column.

    python bench/same_numbers.py 5a2449a            # that commit against the working tree
    python bench/same_numbers.py 5a2449a d841b6f    # two commits

Prints one line per run and exits 1 if any differs. A refactoring that changes no number
passes; anything that moves a random draw or an operation's order fails.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = "--train-size 640 --test-size 200 --batch-size 32 --epochs 3 --frame-every 0".split()
RUNS = {
    f"{variant}_{seeds}": [variant, *FLAGS, "--seeds", str(seeds), "--no-compile"]
    for variant in ("gan", "wgan", "wgan_gp")
    for seeds in (1, 2)
}
RUNS["wgan_gp_compiled"] = ["wgan_gp", *FLAGS]
TABLES = ("metrics.csv", "ensemble.csv", "seed0/metrics.csv", "seed1/metrics.csv")


def checkout(commit: str, folder: Path) -> Path:
    """The commit's files in `folder` (a detached worktree), or the working tree itself."""
    if commit == "working tree":
        return ROOT
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(folder), commit],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return folder


def train(tree: Path, out: Path) -> None:
    for name, (variant, *flags) in RUNS.items():
        script = tree / "variants" / f"{variant}.py"
        command = [sys.executable, str(script), *flags, "--out", str(out / name)]
        subprocess.run(command, cwd=tree, check=True, capture_output=True)


def untimed(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def compare(a: Path, b: Path) -> bool:
    same = True
    for name in RUNS:
        tables = [t for t in TABLES if (a / name / t).exists() or (b / name / t).exists()]
        differ = [t for t in tables if untimed(a / name / t) != untimed(b / name / t)]
        print(f"{name:18} {'differs in ' + ', '.join(differ) if differ else 'identical'}")
        same = same and not differ
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="a commit")
    parser.add_argument("after", nargs="?", default="working tree", help="a commit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        trees = [checkout(c, work / f"tree{i}") for i, c in enumerate((args.before, args.after))]
        try:
            for i, tree in enumerate(trees):
                train(tree, work / f"runs{i}")
            same = compare(work / "runs0", work / "runs1")
        finally:
            for tree in trees:
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    print("the same numbers" if same else "the numbers differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
