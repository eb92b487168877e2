"""Replay a sweep trained without pruning through Optuna's pruners: what each would have
stopped, what it would have kept as the best, and at what share of the CPU time.

    python experiments/prune_replay.py grid8-full

The study's trials start in its order, --workers at a time; a trial's scored epochs arrive at
its measured CPU seconds × epoch / its epochs, go to the pruner as they did to the real one,
and a stopped trial's slot takes the next. A trial costs the share of its CPU time up to the
epoch it stopped at. One real pruned sweep checks the replay (RESULTS.md §8).
"""

from __future__ import annotations

import heapq
import sys
from pathlib import Path

import numpy as np

from errors import UserError
from experiments import runner
from experiments.extras import TrialState, optuna
from experiments.processes import last_scores
from harness.cli import strict_parser

ROOT = Path(__file__).resolve().parents[1]

AFTER = (20, 40, 60)  # the first epochs a trial may be stopped at
ORDERS = 20


def pruners(after: int) -> dict[str, optuna.pruners.BasePruner]:
    return {
        "median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=after),
        "halving, η = 3": optuna.pruners.SuccessiveHalvingPruner(
            min_resource=after, reduction_factor=3
        ),
        "halving, η = 2": optuna.pruners.SuccessiveHalvingPruner(
            min_resource=after, reduction_factor=2
        ),
    }


def replay(trials: list, pruner, workers: int) -> dict[int, int]:
    """The epoch each trial ends at under the pruner (its last, if it completes)."""
    study = optuna.create_study(pruner=pruner)
    waiting = list(trials)
    events: list[tuple] = []
    live: dict[int, optuna.Trial] = {}
    ended: dict[int, int] = {}

    def start(now: float) -> None:
        trial = waiting.pop(0)
        live[trial.number] = study.ask()
        last = max(trial.intermediate_values)
        for epoch, value in trial.intermediate_values.items():
            at = now + trial.user_attrs["cpu_s"] * epoch / last
            heapq.heappush(events, (at, trial.number, epoch, value, last))

    for _ in range(min(workers, len(waiting))):
        start(0.0)
    while events:
        now, number, epoch, value, last = heapq.heappop(events)
        if number in ended:
            continue
        live[number].report(value, epoch)
        if epoch < last and not (epoch > 0 and live[number].should_prune()):
            continue
        state = TrialState.COMPLETE if epoch == last else TrialState.PRUNED
        study.tell(live[number], value if epoch == last else None, state=state)
        ended[number] = epoch
        if waiting:
            start(now)
    return ended


def share(trials: list, ended: dict[int, int]) -> float:
    """The share of the unpruned sweep's CPU time a replay spent."""
    spent = sum(
        t.user_attrs["cpu_s"] * ended[t.number] / max(t.intermediate_values) for t in trials
    )
    return spent / sum(t.user_attrs["cpu_s"] for t in trials)


def kept_best(trials: list, ended: dict[int, int]):
    return min((t for t in trials if ended[t.number] == max(t.intermediate_values)), key=value)


def value(trial) -> float:
    return trial.value


def objective_se(trial) -> float:
    """The standard error over the trial's seeds of their mean W1 / floor over the last
    scored epochs (the objective is their mean)."""
    means = [np.mean(last_scores(m["w1_by_epoch"])) for m in trial.user_attrs["members"]]
    return float(np.std(means, ddof=1) / np.sqrt(len(means)))


def row(name: str, after: int, trials: list, pruner, workers: int) -> str:
    """A pruner's cells: its CPU share and the best it keeps in the study's order, then over
    ORDERS orders (the study's and shuffled ones: which trial reaches a rung first is chance,
    and decides what a pruner keeps) the CPU shares and how often the best kept is within one
    standard error of the best of all."""
    rng = np.random.default_rng(0)
    orders = [trials, *(list(rng.permutation(trials)) for _ in range(ORDERS - 1))]
    ended = [replay(order, pruner, workers) for order in orders]
    shares = [share(trials, e) for e in ended]
    kept = [kept_best(trials, e) for e in ended]
    best = min(trials, key=value)
    bar = best.value + objective_se(best)
    point = " ".join(f"{k}={v}" for k, v in kept[0].params.items())
    cells = [
        name,
        str(after),
        f"{shares[0]:.0%}: {point}, {kept[0].value:.2f}",
        f"{np.median(shares):.0%} ({min(shares):.0%}–{max(shares):.0%})",
        f"{sum(k.value <= bar for k in kept)} of {ORDERS}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    p = strict_parser(description=__doc__.splitlines()[0])
    p.add_argument("study", help="a finished study trained with --no-prune")
    p.add_argument("--storage", default=runner.STORAGE, metavar="URL")
    p.add_argument("--workers", type=int, default=2, help="trials at once, as in the sweep")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=args.study, storage=runner.make_storage(args.storage))
    except KeyError:
        print(f"error: no study {args.study} in {args.storage}", file=sys.stderr)
        return 2
    trials = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    print(
        "| pruner | from epoch | in the study's order: CPU time, best kept | "
        f"over {ORDERS} orders: CPU time, median (range) | best kept within one s.e. |"
    )
    print("|---|---|---|---|---|")
    for after in AFTER:
        for name, pruner in pruners(after).items():
            print(row(name, after, trials, pruner, args.workers), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
