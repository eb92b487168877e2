"""Search a variant's open settings: every point of a grid of flags trains --seeds models in one
vmapped ensemble; the table gives W1 / noise floor over the seeds at epochs 30 and 70 and at the
end, and the epoch each seed first comes within --fit-factor of the floor.

    python experiments/sweep.py wgan_gp --seeds 8 --grid batch-size=8,16,32 --grid ema=0,0.99

Each point is an ordinary lab5 run, `python variants/<variant>.py --seeds N <flags>` without
frames and with the exact W1 every 5 epochs, in its own process (--workers at once, each training
on one thread), written to runs/sweeps/<variant>/<point>/. A finished point adds one JSON line to
--results (default runs/sweeps/<variant>.jsonl); points already there are not trained again, so an
interrupted sweep resumes, and `--table` only prints the table of the grid's points in the file.
A grid value may be any flag of the variant: `--grid seed=100` starts the seeds at 100 (fresh
seeds), `--grid data=../shared/data/points.mat` another file, `--grid vary=ema=0,0.99` several
values of a hyper-parameter in the same ensemble (each a row of the table).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import lab5  # noqa: E402
from config import VARIANTS, parse_config  # noqa: E402
from errors import UserError, strict_parser  # noqa: E402
from experiments.report import mean_se, member_results  # noqa: E402

AT_EPOCHS = (30, 70)
# the exit statuses after which a run folder holds members to read
STATUS = {code: status for status, code in lab5.EXIT_CODES.items() if status != "usage"}
KEPT = ("name", "final", "first", "fit", "w1_by_epoch")


def grid_flags(grid: list[str]) -> list[list[str]]:
    """['a=1,2', 'b=x'] -> [['--a', '1', '--b', 'x'], ['--a', '2', '--b', 'x']]; a value that
    itself holds '=' (vary=ema=0,0.99) is one value, one with spaces several words
    ('betas=0.5 0.9,0.9 0.999')."""
    bad = [g for g in grid if "=" not in g or not g.split("=", 1)[1]]
    if bad:
        raise UserError(f"--grid {bad[0]}: expected FLAG=V1,V2,...")
    axes = []
    for flag, values in (g.split("=", 1) for g in grid):
        axes.append(("--" + flag, [values] if "=" in values else values.split(",")))
    return [
        [x for (flag, _), v in zip(axes, values) for x in (flag, *v.split())]
        for values in itertools.product(*(vs for _, vs in axes))
    ]


def point_name(variant: str, flags: list[str]) -> str:
    text = "_".join([variant, *(f.lstrip("-") for f in flags)])
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:150]


def train_point(job: tuple[str, list[str], int, Path]) -> dict:
    """One ensemble in a process of its own; its members' results, read from its run folder."""
    variant, flags, seeds, root = job
    out = root / point_name(variant, flags)
    argv = [
        sys.executable,
        str(ROOT / "variants" / f"{variant}.py"),
        *flags,
        "--seeds",
        str(seeds),
        "--frame-every",
        "0",
        "--eval-every",
        "5",
        "--out",
        str(out),
        "--overwrite",
    ]
    out.mkdir(parents=True, exist_ok=True)
    log_path = out.parent / f"{out.name}.log"
    start = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode
    record = {
        "variant": variant,
        "flags": " ".join(flags),
        "seeds": seeds,
        "status": STATUS.get(code, f"failed (exit {code}, see {log_path})"),
        "wall_s": round(time.perf_counter() - start, 1),
        "members": [],
    }
    if code in STATUS:  # an interrupted run keeps its members up to their last recorded epoch
        record["members"] = [
            {k: r[k] for k in KEPT} for r in member_results(out) if r["final"] is not None
        ]
    return record


def rows(records: list[dict]) -> dict[str, list[dict]]:
    """The members of every point, one row per point and value of its --vary: a member named
    seed3_ema0.99 goes to the row of its point's flags (less --vary) and ema0.99."""
    out: dict[str, list[dict]] = {}
    for r in records:
        flags = r["flags"].split()
        if "--vary" in flags:
            del flags[flags.index("--vary") : flags.index("--vary") + 2]
        for m in r["members"]:
            label = " ".join([*flags, m["name"].partition("_")[2]]).strip()
            out.setdefault(label or "(defaults)", []).append(m)
    return out


def table(records: list[dict], factor: float = 2.0) -> str:
    """A markdown row per configuration, best final mean first: mean (worst seed) of W1 / floor
    at the AT_EPOCHS and at the end, and the last seed's first epoch within the factor."""
    head = [
        "configuration",
        "seeds",
        *(f"at epoch {e}: mean (worst)" for e in AT_EPOCHS),
        "final: mean ± s.e. (worst)",
        f"first within {factor:g}×: latest seed",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, ms in sorted(
        rows(records).items(), key=lambda item: np.mean([m["final"] for m in item[1]])
    ):
        at = [[m["w1_by_epoch"].get(e) for m in ms] for e in AT_EPOCHS]
        firsts = [m["first"] for m in ms]
        latest = f"never ({firsts.count(None)})" if None in firsts else str(max(firsts))
        cells = [
            label,
            str(len(ms)),
            *(f"{np.mean(a):.2f} ({max(a):.2f})" if None not in a else "—" for a in at),
            f"{mean_se([m['final'] for m in ms])} ({max(m['final'] for m in ms):.2f})",
            latest,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_results(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.open()]
    for m in (m for r in records for m in r["members"]):  # JSON made the epochs strings
        m["w1_by_epoch"] = {int(e): v for e, v in m["w1_by_epoch"].items()}
    return records


def main() -> int:
    try:
        return sweep()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def parse_args() -> argparse.Namespace:
    p = strict_parser(description=__doc__.splitlines()[0])
    p.add_argument("variant", choices=VARIANTS)
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FLAG=V1,V2",
        help="a flag of the variant (without its dashes) and the values to try; repeat "
        "it for the product of several flags",
    )
    p.add_argument("--seeds", type=int, default=8, help="models per point, in one ensemble")
    p.add_argument("--workers", type=int, default=2, help="points training at once")
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="JSONL file (default: runs/sweeps/<variant>.jsonl)",
    )
    p.add_argument("--table", action="store_true", help="only print the table from the file")
    return p.parse_args()


def sweep() -> int:
    args = parse_args()
    results_file = args.results or Path("runs/sweeps") / f"{args.variant}.jsonl"
    results_file.parent.mkdir(parents=True, exist_ok=True)
    done = read_results(results_file) if results_file.exists() else []
    points = grid_flags(args.grid)
    for flags in points:  # a bad value stops the sweep here, not in a worker
        parse_config(args.variant, [*flags, "--seeds", str(args.seeds)])
    seen = {(r["variant"], r["flags"], r["seeds"]) for r in done}
    jobs = [
        (args.variant, flags, args.seeds, results_file.with_suffix(""))
        for flags in points
        if (args.variant, " ".join(flags), args.seeds) not in seen
    ]
    if not args.table:
        print(f"{len(jobs)} points to train, {len(done)} already in {results_file}", flush=True)
        with ThreadPoolExecutor(args.workers) as pool, results_file.open("a") as out:
            for future in as_completed([pool.submit(train_point, job) for job in jobs]):
                r = future.result()
                out.write(json.dumps(r) + "\n")
                out.flush()
                print(
                    f"{r['flags'] or '(defaults)'}: {r['status']} in {r['wall_s']:.0f} s",
                    flush=True,
                )
                done.append(r)
    wanted = {(args.variant, " ".join(f), args.seeds) for f in points}
    print(table([r for r in done if (r["variant"], r["flags"], r["seeds"]) in wanted]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
