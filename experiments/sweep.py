"""Search a variant's settings as an Optuna study: every trial is an ordinary lab5 run of --seeds
models in one vmapped ensemble, and the table gives W1 / noise floor over its seeds.

    python experiments/sweep.py wgan_gp --seeds 4 --grid batch-size=16,32 --grid init=torch,kaiming
    python experiments/sweep.py wgan_gp --seeds 4 --range lr=1e-5:1e-3:log --trials 20

A --grid trains every point of the product of its values once; a --range (with --trials) lets
Optuna's TPE sampler choose the values, grid flags among them. A trial runs
`python variants/<variant>.py <its flags> --seeds N --eval-every 5 --frame-every 0` in a
process of its own, into runs/sweeps/<study>/<point>/ (its console in <point>.log), and
reports W1 / floor at every scored epoch to its trial; the pruner stops a trial that will not
be among the best (its folder kept, and marked pruned on the page). The objective, which the
table is ordered by: the mean over the seeds and the last five scored epochs (trained ones, not
epoch 0) of W1 / floor.

The study lives in --storage (by default an SQLite file, runs/sweeps/optuna.db): the same
command run again goes on with it (a finished sweep only prints its table), and the same
command started on other machines with one PostgreSQL URL (or a journal file on a shared disk)
shares the trials out among them, each trained once. A grid value may be any flag of the
variant: `--grid seed=100` starts the seeds at 100, `--grid vary=ema=0,0.99` puts several values
in the same ensemble (each a row of the table; --no-prune, as the run is judged whole).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import re
import sys
from pathlib import Path

import numpy as np

from errors import UserError
from experiments import processes, runner
from experiments.extras import optuna
from experiments.results import mean_se, member_result
from harness import run_folder
from harness.cli import exit_status, strict_parser
from harness.flags import FLAGS, VARIANTS, default, parse_config

ROOT = Path(__file__).resolve().parents[1]

AT_EPOCHS = (30, 70)
KEPT = ("name", "final", "first", "fit", "w1_by_epoch")
EVAL_EVERY = 5


def grid_axes(grid: list[str]) -> dict[str, list[str]]:
    """['a=1,2', 'b=x'] -> {'a': ['1', '2'], 'b': ['x']}; a value that itself holds '='
    (vary=ema=0,0.99) is one value."""
    bad = [g for g in grid if "=" not in g or not g.split("=", 1)[1]]
    if bad:
        raise UserError(f"--grid {bad[0]}: expected FLAG=V1,V2,...")
    pairs = [g.split("=", 1) for g in grid]
    return {flag: [values] if "=" in values else values.split(",") for flag, values in pairs}


def grid_points(axes: dict[str, list[str]]) -> list[dict]:
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def point_flags(point: dict) -> list[str]:
    """{'betas': '0.5 0.9', 'lr': 0.001} -> ['--betas', '0.5', '0.9', '--lr', '0.001']"""
    return [x for flag, value in point.items() for x in ("--" + flag, *str(value).split())]


def parse_range(text: str) -> tuple[str, float, float, bool]:
    """'lr=1e-5:1e-3:log' -> ('lr', 1e-05, 0.001, True)"""
    flag, _, bounds = text.partition("=")
    parts = bounds.split(":")
    try:
        low = float(parts[0])
        high = float(parts[1])
    except (ValueError, IndexError):
        raise UserError(f"--range {text}: expected FLAG=LOW:HIGH or FLAG=LOW:HIGH:log") from None
    if len(parts) > 3 or parts[2:] not in ([], ["log"]) or not low < high:
        raise UserError(f"--range {text}: expected FLAG=LOW:HIGH or FLAG=LOW:HIGH:log, LOW < HIGH")
    if parts[2:] == ["log"] and low <= 0:
        raise UserError(f"--range {text}: a log scale needs LOW > 0")
    return flag, low, high, parts[2:] == ["log"]


def typed_range(bounds: tuple, variant: str) -> tuple:
    """A parsed range, in whole numbers for a whole-numbered flag (n-critic, batch-size)."""
    flag, low, high, log = bounds
    name = flag.replace("-", "_")
    if name not in FLAGS:
        raise UserError(f"--range {flag}=...: {variant} has no flag --{flag}")
    value = default(name, variant)
    if isinstance(value, int) and not isinstance(value, bool):
        return flag, int(low), int(high), log
    return bounds


def suggest(trial: optuna.Trial, axes: dict, ranges: list[tuple]) -> dict:
    """The trial's point: its queued values, else the sampler's."""
    point = {flag: trial.suggest_categorical(flag, values) for flag, values in axes.items()}
    for flag, low, high, log in ranges:
        draw = trial.suggest_int if isinstance(low, int) else trial.suggest_float
        point[flag] = draw(flag, low, high, log=log)
    return point


def point_name(variant: str, flags: list[str]) -> str:
    """A folder's name for the flags, cut to 150 characters with a digest of all of them (two
    long names that share a beginning stay two folders)."""
    text = "_".join([variant, *(f.lstrip("-") for f in flags)])
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
    if len(name) <= 150:
        return name
    return name[:141] + "_" + hashlib.sha256(text.encode()).hexdigest()[:8]


def run_flags(point: dict, args) -> list[str]:
    """A trial's flags: its point's, the sweep's seeds, scores every EVAL_EVERY epochs and no
    frames, one thread each on a CPU (the runs at once share its cores) or the GPU on one; then
    the flags after --, which override these."""
    where = ["--device", "cuda"] if args.gpus else ["--threads", "1"]
    if {"threads", "device"} & {*point, *(f.lstrip("-") for f in args.fixed)}:
        where = []
    every = ["--frame-every", "0", "--eval-every", str(EVAL_EVERY)]
    return [*point_flags(point), "--seeds", str(args.seeds), *every, *where, *args.fixed]


def make_job(args, axes: dict, ranges: list[tuple], root: Path):
    def job(trial: optuna.Trial) -> runner.Job:
        point = suggest(trial, axes, ranges)
        flags = run_flags(point, args)
        name = point_name(args.variant, point_flags(point)) if not ranges else None
        folder = trial.user_attrs.get("folder") or root / (name or f"trial{trial.number:04d}")
        return runner.Job(args.variant, flags, Path(folder))

    return job


def results(folder: Path) -> dict:
    """What the study keeps of a run for the table: its end, and per member its W1 / floor by
    scored epoch, final, and first and lasting epochs within the fit factor."""
    end = run_folder.run_end(folder)
    if end["status"] == "not started":
        return end
    members = [member_result(m) for m in run_folder.members(folder)]
    return {**end, "members": [{k: m[k] for k in KEPT} for m in members if m["final"] is not None]}


def records(trials: list[optuna.trial.FrozenTrial]) -> list[dict]:
    """Per trial that trained: its flags, state and members (with integer epochs again:
    the study stores JSON)."""
    out = []
    for t in trials:
        members = t.user_attrs.get("members") or []
        for m in members:
            m["w1_by_epoch"] = {int(e): v for e, v in m["w1_by_epoch"].items()}
        flags = " ".join(point_flags(t.user_attrs.get("point") or t.params))
        state = t.state.name.lower()
        out.append(
            {"number": t.number, "flags": flags, "state": state, "members": members, **t.user_attrs}
        )
    return out


def rows(records: list[dict]) -> dict[str, list[dict]]:
    """The members of every completed trial, one row per trial and value of its --vary: a
    member named seed3_ema0.99 goes to the row of its point's flags (less --vary) and ema0.99."""
    out: dict[str, list[dict]] = {}
    for r in (r for r in records if r["state"] == "complete"):
        flags = r["flags"].split()
        if "--vary" in flags:
            del flags[flags.index("--vary") : flags.index("--vary") + 2]
        for m in r["members"]:
            varied = re.fullmatch(r"seed\d+_?(.*)", m["name"])  # a single model: its run's name
            label = " ".join([*flags, varied[1] if varied else ""]).strip()
            out.setdefault(label or "(defaults)", []).append(m)
    return out


def objective(ms: list[dict]) -> float:
    """A row's objective, as processes.objective scores a run (and the table's column shows it):
    its members' mean of W1 / floor over their last scored epochs."""
    return float(np.mean([np.mean(processes.last_scores(m["w1_by_epoch"])) for m in ms]))


def row_cells(label: str, ms: list[dict], at_epochs: list[int]) -> list[str]:
    at = [[m["w1_by_epoch"].get(e) for m in ms] for e in at_epochs]
    firsts = [m["first"] for m in ms]
    latest = f"never ({firsts.count(None)})" if None in firsts else str(max(firsts))
    return [
        label,
        str(len(ms)),
        *(f"{np.mean(a):.2f} ({max(a):.2f})" if None not in a else "—" for a in at),
        f"{mean_se([m['final'] for m in ms])} ({max(m['final'] for m in ms):.2f})",
        mean_se([np.mean(processes.last_scores(m["w1_by_epoch"])) for m in ms]),
        latest,
    ]


def table(records: list[dict], factor: float = 2.0) -> str:
    """A markdown row per configuration, best objective first: mean (worst seed) of W1 / floor
    at those of AT_EPOCHS that some run reached and at the end, the objective, the last seed's
    first epoch within the factor; then the pruned and failed trials, and the CPU time of all."""
    by_row = rows(records)
    reached = {e for ms in by_row.values() for m in ms for e in m["w1_by_epoch"]}
    at_epochs = [e for e in AT_EPOCHS if e in reached]
    head = [
        "configuration",
        "seeds",
        *(f"at epoch {e}: mean (worst)" for e in at_epochs),
        "final: mean ± s.e. (worst)",
        f"objective: last {processes.LAST} scores, mean ± s.e.",
        f"first within {factor:g}×: latest seed",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranked = sorted(by_row.items(), key=lambda item: objective(item[1]))
    lines += ["| " + " | ".join(row_cells(label, ms, at_epochs)) + " |" for label, ms in ranked]
    return "\n".join([*lines, "", *ends(records)])


def ends(records: list[dict]) -> list[str]:
    """The trials that did not complete, and what the sweep cost."""
    requeued = {r.get("retry_of") for r in records}
    stopped = [r for r in records if r["state"] == "fail" and r.get("number") in requeued]
    failed = [r for r in records if r["state"] == "fail" and r not in stopped]
    pruned = [r for r in records if r["state"] == "pruned"]
    complete = len(records) - len(stopped) - len(failed) - len(pruned)
    cpu = sum(r.get("cpu_s", 0) for r in records) / 60
    lines = [
        f"{complete} completed, {len(pruned)} pruned, {len(failed)} failed; {len(stopped)} "
        f"stopped and queued again; {cpu:.1f} CPU-minutes"
    ]
    for r in pruned:
        lines.append(f"- pruned at epoch {r.get('pruned_at')}: {r['flags'] or '(defaults)'}")
    for r in failed:
        lines.append(f"- failed ({r.get('status')}): {r['flags']}, see {r.get('log')}")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The sweep's flags, and in args.fixed those after --, for every trial."""
    p = strict_parser(
        description=" ".join(__doc__.split("\n\n")[0].split()),
        usage="%(prog)s VARIANT [options] [-- FLAGS for every trial]",
        epilog="Flags after -- go to every trial unchanged, e.g. -- --epochs 40 --data ring8.",
    )
    p.add_argument("variant", choices=VARIANTS)
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FLAG=V1,V2",
        help="a flag of the variant (without its dashes) and the values to try; repeat it for "
        "the product of several flags",
    )
    p.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="FLAG=LOW:HIGH[:log]",
        help="a flag whose value the sampler chooses in [LOW, HIGH] (on a log scale with :log)",
    )
    p.add_argument("--trials", type=int, default=None, help="how many trials a --range search runs")
    p.add_argument(
        "--seeds", type=int, default=8, help="models per trial, in one ensemble (default: 8)"
    )
    runner.add_flags(p, workers=runner.fitting_workers())
    p.add_argument("--study", default=None, help="the study's name (default: from the flags)")
    add_pruning_flags(p)
    p.add_argument("--table", action="store_true", help="only print the study's table")
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    args.fixed = argv[cut + 1 :]
    return args


def add_pruning_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pruner",
        choices=("median", "halving"),
        default="halving",
        help="which trials stop early: halving goes on past epochs A, 3A, 9A, ... (A: "
        "--prune-after) with the best third of the trials there; median stops a trial worse than "
        "the median of the completed ones at the same epoch (default: halving)",
    )
    p.add_argument(
        "--prune-after",
        type=int,
        default=40,
        metavar="EPOCHS",
        help="the first epoch a trial may be stopped at (default: 40; a sweep whose trials "
        "train no more epochs runs unpruned)",
    )
    p.add_argument("--no-prune", action="store_true", help="train every trial to its end")


def make_pruner(name: str, after: int) -> optuna.pruners.BasePruner:
    """halving: successive halving, whose rungs are at epochs after, 3 × after, 9 × after, ...:
    a trial goes on past a rung only if it is in the best third of the trials that reached it
    (the best, while fewer than three have); median: a trial worse than the median of the
    completed trials at the same epoch stops, from epoch after on and once two have completed."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=after)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=after, reduction_factor=3)


def checked_sweep(args) -> tuple[dict, list[tuple], list[dict]]:
    """The grid's axes, the searched ranges and the points to queue; every point (and each
    range's ends) parsed as the variant would, so a bad value stops the sweep here."""
    axes = grid_axes(args.grid)
    ranges = [typed_range(parse_range(r), args.variant) for r in args.range]
    if ranges and not args.trials:
        raise UserError("--range needs --trials N: how many trials the search runs")
    if args.trials and not ranges:
        raise UserError("--trials is for a --range search; a grid trains each of its points once")
    both = {flag for flag, *_ in ranges} & set(axes)
    if both:
        raise UserError(f"--grid and --range both set {sorted(both)[0]}: give it one of them")
    if "vary" in axes and not args.no_prune:
        raise UserError(
            "--grid vary=... puts several settings in one run, which a pruner would judge as "
            "one: add --no-prune"
        )
    points = grid_points(axes) if not ranges else []
    for point in points:
        parse_config(args.variant, run_flags(point, args))
    base = grid_points(axes)[0]
    for flag, low, high, _ in ranges:
        for value in (low, high):
            parse_config(args.variant, run_flags({**base, flag: value}, args))
    return axes, ranges, points


def sweep_command(args) -> str:
    """The sweep as a command, less the flags that only say how this driver runs it (a pruned
    sweep and an unpruned one are two studies)."""
    words = [*(f"--grid {g}" for g in args.grid), *(f"--range {r}" for r in args.range)]
    trials = [f"--trials {args.trials}"] if args.trials else []
    pruning = (
        "--no-prune"
        if args.no_prune
        else f"--pruner {args.pruner} --prune-after {args.prune_after}"
    )
    fixed = ["--", *args.fixed] if args.fixed else []
    return " ".join([args.variant, f"--seeds {args.seeds}", *words, *trials, pruning, *fixed])


def make_plan(args, axes: dict, ranges: list[tuple], points: list[dict], name: str):
    return runner.Plan(
        job=make_job(args, axes, ranges, Path("runs/sweeps") / name),
        trials=len(points) or args.trials,
        prune=not args.no_prune,
        slots=runner.slots(args),
        beat_s=args.beat,
        objective=processes.objective,
        results=results,
    )


def longest_trial(args, axes: dict, ranges: list[tuple]) -> int:
    """The most epochs a trial of the sweep trains (at either end of its ranges)."""
    base = grid_points(axes)
    ends = [{**base[0], flag: value} for flag, low, high, _ in ranges for value in (low, high)]
    return max(parse_config(args.variant, run_flags(p, args))["epochs"] for p in base + ends)


def without_pruning(args, axes: dict, ranges: list[tuple]):
    """The sweep's args with --no-prune where --prune-after is not before the trials' last
    epoch: no trial could be stopped early, and the study's name should not say it may be."""
    epochs = longest_trial(args, axes, ranges)
    if args.no_prune or args.prune_after < epochs:
        return args
    print(
        f"note: --prune-after {args.prune_after} is not before the trials' last epoch "
        f"({epochs}): none can be stopped early, so the sweep runs as --no-prune"
    )
    return argparse.Namespace(**{**vars(args), "no_prune": True})


def sweep(args) -> int:
    axes, ranges, points = checked_sweep(args)
    args = without_pruning(args, axes, ranges)
    crowded = runner.crowded_warning(args)
    if crowded:
        print(crowded, file=sys.stderr)
    command = sweep_command(args)
    name = args.study or point_name(args.variant, command.split()[1:])
    spec = {"command": f"python experiments/sweep.py {command}", "seeds": args.seeds}
    storage = runner.make_storage(args.storage, args.beat)
    pruner = make_pruner(args.pruner, args.prune_after)
    if args.table:
        print(table(records(runner.existing_study(storage, name).get_trials())))
        return 0
    study = runner.open_study(
        storage, name, spec, points, optuna.samplers.TPESampler(seed=0), pruner
    )
    plan = make_plan(args, axes, ranges, points, name)
    print(f"study {name} in {args.storage}: {len(plan.slots)} trials at a time", flush=True)
    runner.drive(study, storage, plan)
    print(table(records(study.get_trials())))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stopped = "interrupted: the same command goes on with the study"
    return exit_status(lambda: sweep(parse_args(args)), stopped)


if __name__ == "__main__":
    sys.exit(main())
