"""Which variant fits best, and at which length of training? GAN, WGAN and WGAN-GP on the same
data for the same number of generator updates, several seeds each in one vmapped ensemble,
scored against the noise floor as they train; then a figure of W1 / noise floor against the
updates with the seeds' band, a GIF of the three side by side at matched training, and a
verdict written from this run's numbers.

    python experiments/compare_variants.py                   # 4 seeds, 87,400 updates each
    python experiments/compare_variants.py --updates 20000   # a shorter race
    python experiments/compare_variants.py --data ring8 -- --lr 3e-4   # flags after --: all three

Why generator updates: each variant trains with its own defaults (docs/defaults.md), whose
batch sizes differ, so the same number of epochs is not the same training (an epoch of
WGAN-GP, batch 16, is 437 updates on the lab's data; of WGAN, batch 64, 109). The generator is
what is judged, and an update is one step of it, as the WGAN papers count training; a critic's
updates per generator update (--n-critic) are part of its variant's recipe, and what they cost
shows in the seconds each variant took. Scores fall at the same updates for all three (to
within an epoch's rounding, which the figure and the GIF say). The runs are ordinary run
folders under --out: run again, the command reuses those that completed with the same
settings and goes on with those that were interrupted.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from data.points import TOY_DATA, file_sha256, find_data
from errors import UserError
from experiments.results import training_values
from harness import run_folder
from harness.cli import exit_status, strict_parser
from harness.evaluation import mean_and_se
from harness.flags import FLAGS, TITLES, VARIANTS, parse_config, with_added_flags
from harness.main import load_data, split_data
from plots.compare import MATCHED, matched_frame, plot_matched
from plots.make_gifs import write_gif
from plots.page import write_index

ROOT = Path(__file__).resolve().parents[1]
SCORES = 20  # comparisons along the way, each a frame of the GIF


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command's flags, and in args.fixed those after --, for every variant's run."""
    p = strict_parser(
        description=" ".join(__doc__.split("\n\n")[0].split()),
        usage="%(prog)s [options] [-- FLAGS for every variant's run]",
        epilog="Flags after -- go to all three runs unchanged, e.g. -- --lr 3e-4 --no-compile.",
    )
    p.add_argument("--seeds", type=int, default=4, help="models per variant (default: 4)")
    p.add_argument(
        "--updates",
        type=int,
        default=87400,
        help="generator updates each variant trains (default: 87400, the report's 200 epochs of "
        "WGAN-GP's defaults on the lab's data: 401 of GAN's, 802 of WGAN's)",
    )
    p.add_argument("--data", default="data/points.mat", help="the points (default: %(default)s)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/compare_variants"),
        help="where the three runs, the figure, the GIF and the verdict go (default: %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="train again runs that completed")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="resize compare.gif's frames by this factor (default: %(default)s)",
    )
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    args.fixed = argv[cut + 1 :]
    if args.seeds < 1 or args.updates < SCORES or not 0 < args.scale <= 4:
        raise UserError(
            f"--seeds must be at least 1, --updates at least {SCORES} and --scale in (0, 4]"
        )
    return args


def epoch_steps(variant: str, flags: list[str]) -> int:
    """Generator updates in an epoch of the variant with these flags: its training points over
    its batch size times its critic updates per generator update."""
    cfg = parse_config(variant, flags)
    points, _, source = load_data(cfg)
    train = split_data(cfg, points, source)[0]
    return len(train) // (cfg["batch_size"] * cfg["n_critic"])


def schedule(steps: dict[str, int], updates: int) -> tuple[int, dict[str, int]]:
    """How many scores, and each variant's epochs between them, so that all three are scored
    at the same updates: up to SCORES times over `updates`, as nearly as their epochs allow.
    The variant of the longest epoch sets the interval, a whole number of its epochs; the
    others' epochs fit it to within half an epoch of theirs."""
    longest = max(steps.values())
    interval = max(1, round(updates / SCORES / longest)) * longest
    scores = max(1, round(updates / interval))
    return scores, {v: max(1, round(interval / s)) for v, s in steps.items()}


def planned_argv(args, variant: str, every: int, scores: int) -> list[str]:
    """A variant's run: its defaults, the shared flags, and `scores` scores and frames, one
    every `every` epochs."""
    shared = ["--data", args.data, "--seeds", str(args.seeds), *args.fixed]
    cadence = ["--epochs", str(every * scores), "--eval-every", str(every)]
    return [*shared, *cadence, "--frame-every", str(every), "--out", str(args.out / variant)]


def same_training(saved: dict, planned: dict) -> bool:
    """Does a run folder's config.json train as the planned config would: every flag's value
    alike (but where it runs), and the same data (a file by its digest)?"""
    flags = [name for name in FLAGS if name != "data"]
    values = [training_values({k: cfg.get(k) for k in flags}) for cfg in (saved, planned)]
    data = planned["data"]
    digest = data if data in TOY_DATA else file_sha256(find_data(data))
    return values[0] == values[1] and (saved.get("data_sha256") or saved["data"]) == digest


def how_to_train(variant: str, argv: list[str], folder: Path, force: bool) -> list[str] | None:
    """The command line that trains the run in `folder`: none where it completed with these
    settings; --resume where it stopped on the way; else a new run over what is there."""
    planned = parse_config(variant, [*argv, "--overwrite"])
    try:
        saved = with_added_flags(run_folder.read_config(folder), variant)
    except UserError:
        return [*argv, "--overwrite"]
    same = saved["variant"] == variant and same_training(saved, planned)
    status = run_folder.run_end(folder)["status"]
    if same and status == "completed" and not force:
        print(f"{folder}: trained already with these settings (--force trains it again)")
        return None
    if same and status in ("interrupted", "running") and not force:
        return ["--resume", str(folder)]
    return [*argv, "--overwrite"]


def train(args, variant: str, every: int, scores: int) -> None:
    """The variant's run, as `python variants/<variant>.py` would train it, on this console."""
    folder = args.out / variant
    argv = how_to_train(variant, planned_argv(args, variant, every, scores), folder, args.force)
    if argv is None:
        return
    print(f"\n{TITLES[variant]}: python variants/{variant}.py {' '.join(argv)}", flush=True)
    code = ended(
        subprocess.Popen([sys.executable, str(ROOT / "variants" / f"{variant}.py"), *argv])
    )
    if code == 128 + signal.SIGINT:
        raise KeyboardInterrupt  # the run ended cleanly and said so; this command stops too
    if code != 0:
        raise SystemExit(code)  # the run said why; the same command goes on where it stopped


def ended(run: subprocess.Popen) -> int:
    """The run's exit status once it has ended. Ctrl-C reaches the run too, which ends itself
    cleanly (its checkpoint and summary written): this process waits for that, and does not
    kill it as subprocess.call would."""
    while True:
        try:
            return run.wait()
        except KeyboardInterrupt:
            continue


def curve(folder: Path) -> dict:
    """What the comparison needs of a variant's run: the updates at its scores, W1 / noise
    floor per seed there, a Gaussian blob's W1 / floor, the fit factor, its training seconds and
    the points each update saw."""
    config = run_folder.read_config(folder)
    summary = run_folder.read_summary(folder)
    ratios = [run_folder.w1_ratios(m) for m in run_folder.members(folder)]
    epochs = sorted(set.intersection(*(set(r) for r in ratios)))
    floor = summary["noise_floor"]["w1"]
    return {
        "title": TITLES[config["variant"]],
        "epochs": epochs,
        "updates": np.array(epochs) * config["steps_per_epoch"],
        "ratios": np.array([[r[e] for e in epochs] for r in ratios]),
        "blob": summary["gaussian_w1"] / floor,
        "factor": config["fit_factor"],
        "seconds": summary["train_s"],
        "points": config["batch_size"] * config["n_critic"],
        "folder": folder,
    }


def standing(curves: list[dict], k: int) -> list[tuple[str, float, float]]:
    """The variants at their k-th score, best first: (title, mean, standard error)."""
    found = [(c["title"], *mean_and_se(c["ratios"][:, k])) for c in curves]
    return sorted(found, key=lambda s: s[1])


def said(standings: list[tuple[str, float, float]]) -> str:
    """A standing in words: each variant's W1 / floor, and a tie where the first two's
    mean ± s.e. meet."""
    numbers = ", ".join(f"{t} {m:.2f}× ± {se:.2f}" for t, m, se in standings)
    first, second = standings[:2]
    tied = first[1] + first[2] >= second[1] - second[2]
    return numbers + (f" ({first[0]} and {second[0]} tied within a standard error)" if tied else "")


def best_since(curves: list[dict]) -> int:
    """The first score from which the variant best at the end is best at every one."""
    best = [standing(curves, k)[0][0] for k in range(len(curves[0]["updates"]))]
    since = len(best) - 1
    while since > 1 and best[since - 1] == best[-1]:
        since -= 1
    return since


def times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def at_lengths(curves: list[dict]) -> list[str]:
    """Who is best from when on (and who was before), then the standing at the first score, a
    quarter and half of the way, and the end."""
    updates = np.max([c["updates"] for c in curves], axis=0)
    last = len(updates) - 1
    since = best_since(curves)
    best = standing(curves, last)[0][0]
    before = [standing(curves, k)[0][0] for k in range(1, since)]
    earlier = " and ".join(f"{t} {times(before.count(t))}" for t in dict.fromkeys(before))
    lines = [
        f"- {best} is best (by its seeds' mean) at every score from {int(updates[since]):,} "
        "generator updates on" + (f"; before that, the best was {earlier}" if before else "")
    ]
    for k in sorted({1, max(1, last // 4), max(1, last // 2), last}):
        lines.append(f"- at {int(updates[k]):,} generator updates: {said(standing(curves, k))}")
    return lines


def first_fit(c: dict) -> str:
    """The updates at which a variant's seeds first came within the fit factor of the floor."""
    within = c["ratios"][:, 1:] <= c["factor"]
    reached = [int(c["updates"][1:][row.argmax()]) for row in within if row.any()]
    if not reached:
        return f"{c['title']} never"
    return (
        f"{c['title']} after {int(np.mean(reached)):,} ({len(reached)} of {len(c['ratios'])} seeds)"
    )


def later(curves: list[dict]) -> str:
    """How each variant moved from a quarter of the way to the end: still learning, or not."""
    quarter = max(1, (len(curves[0]["updates"]) - 1) // 4)
    moves = []
    for c in curves:
        start = mean_and_se(c["ratios"][:, quarter])
        end = mean_and_se(c["ratios"][:, -1])
        apart = abs(end[0] - start[0]) > start[1] + end[1]  # beyond both standard errors
        word = ("better" if end[0] < start[0] else "worse") if apart else "level"
        moves.append(f"{c['title']} {start[0]:.2f}× → {end[0]:.2f}× ({word})")
    return ", ".join(moves)


def verdict(curves: list[dict]) -> list[str]:
    """What wins at which length, and the numbers that say why, all from this run."""
    factor = curves[0]["factor"]
    seeds = len(curves[0]["ratios"])
    updates = np.array([c["updates"] for c in curves])
    apart = ((updates.max(0) - updates.min(0))[1:] / updates.max(0)[1:]).max()
    return [
        f"# Which variant fits best? {seeds} seeds each, {int(updates[:, -1].max()):,} "
        "generator updates",
        "",
        "W1 / noise floor, mean ± standard error over the seeds (1× is a perfect generator; a "
        f"Gaussian blob of the data's mean and covariance scores {curves[0]['blob']:.1f}×); "
        f"the variants' updates at a score differ by {apart:.1%} at most:",
        "",
        *at_lengths(curves),
        f"- why the length matters: first within {factor:g}× the noise floor (the mean over the "
        "seeds that got there), "
        + "; ".join(first_fit(c) for c in curves)
        + "; from a quarter of the way to the end, "
        + later(curves),
        "- points each update learnt from: "
        + ", ".join(f"{c['title']} {c['points']}" for c in curves)
        + " ("
        + ", ".join(f"{c['points'] * c['updates'][-1] / 1e6:.1f}M" for c in curves)
        + " in all); training took "
        + ", ".join(f"{c['title']} {c['seconds']:.0f} s" for c in curves)
        + f" ({seeds} seeds at once, on this machine)",
    ]


def matched_gif(curves: list[dict], out: Path, scale: float) -> Path:
    """compare.gif: each variant's first seed side by side at every score, under the updates
    and every variant's mean W1 / floor there."""
    firsts = [run_folder.frames(run_folder.members(c["folder"])[0]) for c in curves]
    titles = [c["title"] for c in curves]
    images = []
    for k in range(len(curves[0]["epochs"])):
        frames = [f[c["epochs"][k]] for f, c in zip(firsts, curves)]
        updates = [int(c["updates"][k]) for c in curves]
        means = [c["ratios"][:, k].mean() for c in curves]
        images.append(matched_frame(frames, titles, updates, means))
    return write_gif(out / MATCHED["gif"], images, scale)


def compare(args) -> None:
    flags = ["--data", args.data, *args.fixed]
    steps = {v: epoch_steps(v, flags) for v in VARIANTS}
    scores, every = schedule(steps, args.updates)
    for variant in VARIANTS:
        train(args, variant, every[variant], scores)
    curves = [curve(args.out / v) for v in VARIANTS]
    lines = verdict(curves)
    (args.out / MATCHED["verdict"]).write_text("\n".join(lines) + "\n")
    plot_matched(curves, args.out / MATCHED["figure"])
    matched_gif(curves, args.out, args.scale)
    write_index(args.out.parent)
    print("\n" + "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stopped = "interrupted: the same command goes on where it stopped"
    return exit_status(lambda: compare(parse_args(args)), stopped)


if __name__ == "__main__":
    sys.exit(main())
