"""Train one variant over a grid of flags and several seeds; print final W1 / noise floor.

This is how the defaults were chosen (README, "Defaults"). Each run is a normal lab5 run
without frames; runs go to separate processes, one thread each, so two cores train two models.

    python experiments/sweep.py wgan_gp --seeds 6 --grid n-critic=1,5 --grid init=torch,kaiming

Results are appended to a JSONL file (default runs/sweeps/<variant>.jsonl), one line per run;
runs already in the file are not trained again, so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import math
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lab5  # noqa: E402


def grid_flags(grid: list[str]) -> list[list[str]]:
    """['a=1,2', 'b=x'] -> [['--a', '1', '--b', 'x'], ['--a', '2', '--b', 'x']]"""
    bad = [g for g in grid if "=" not in g or not g.split("=", 1)[1]]
    if bad:
        raise lab5.UserError(f"--grid {bad[0]}: expected FLAG=V1,V2,...")
    axes = [("--" + flag, values.split(",")) for flag, values in (g.split("=", 1) for g in grid)]
    return [[x for (flag, _), v in zip(axes, values) for x in (flag, v)]
            for values in itertools.product(*(vs for _, vs in axes))]


def train_one(job: tuple[str, list[str], int, str]) -> dict:
    variant, flags, seed, root = job
    import torch
    torch.set_num_threads(1)
    name = "_".join([variant, *(f.lstrip("-") for f in flags), f"seed{seed}"])
    cfg = lab5.parse_config(variant, [*flags, "--seed", str(seed), "--frame-every", "0",
                                      "--eval-every", "10", "--out", str(Path(root) / name),
                                      "--overwrite"])
    with contextlib.redirect_stdout(io.StringIO()):
        summary = lab5.train(cfg)
    with open(Path(cfg["out"]) / "metrics.csv") as f:
        w1 = [(int(r["epoch"]), float(r["w1"])) for r in csv.DictReader(f) if r["w1"]]
    floor = summary["noise_floor"]["w1"]
    # a diverged run has no final W1
    final = summary["final"]["w1"] if summary["status"] == "completed" else None
    return {"variant": variant, "flags": " ".join(flags), "seed": seed,
            "status": summary["status"], "final_w1": final, "floor": floor,
            "ratio": final / floor if final is not None else None,
            "w1_by_epoch": w1, "train_s": summary["train_s"]}


def table(results: list[dict]) -> str:
    by_flags: dict[str, list[dict]] = {}
    for r in results:
        by_flags.setdefault(r["flags"], []).append(r)
    def ratios(rs: list[dict]) -> list[float]:  # a diverged run counts as infinitely far
        return [math.inf if r["ratio"] is None else r["ratio"]
                for r in sorted(rs, key=lambda r: r["seed"])]

    lines = [f"{'flags':48s} seeds  median  worst   final W1 / floor per seed (inf: diverged)"]
    for flags, rs in sorted(by_flags.items(), key=lambda kv: np.median(ratios(kv[1]))):
        rr = ratios(rs)
        lines.append(f"{flags or '(defaults)':48s} {len(rs):5d}  {np.median(rr):6.2f}  "
                     f"{max(rr):5.2f}   " + " ".join(f"{x:.2f}" for x in rr))
    return "\n".join(lines)


def main() -> int:
    try:
        return sweep()
    except lab5.UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def sweep() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.error = lab5.fail
    p.add_argument("variant", choices=lab5.VARIANTS)
    p.add_argument("--grid", action="append", default=[], metavar="FLAG=V1,V2",
                   help="a flag of the variant (without its dashes) and the values to try; repeat "
                   "it for the product of several flags")
    p.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1 for every point of the grid")
    p.add_argument("--workers", type=int, default=2, help="processes training at once")
    p.add_argument("--results", type=Path, default=None,
                   help="JSONL file (default: runs/sweeps/<variant>.jsonl)")
    args = p.parse_args()
    results_file = args.results or Path("runs/sweeps") / f"{args.variant}.jsonl"
    results_file.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in results_file.open()] if results_file.exists() else []
    seen = {(r["variant"], r["flags"], r["seed"]) for r in done}
    for flags in grid_flags(args.grid):  # a bad value stops the sweep here, not in a worker
        lab5.parse_config(args.variant, flags)
    jobs = [(args.variant, flags, seed, str(results_file.parent / "runs"))
            for flags in grid_flags(args.grid) for seed in range(args.seeds)
            if (args.variant, " ".join(flags), seed) not in seen]
    print(f"{len(jobs)} runs to train, {len(done)} already in {results_file}", flush=True)
    with Pool(args.workers) as pool, results_file.open("a") as out:
        for r in pool.imap_unordered(train_one, jobs):
            out.write(json.dumps(r) + "\n")
            out.flush()
            outcome = (f"W1 {r['final_w1']:.4f} = {r['ratio']:.2f}× floor" if r["ratio"] is not None
                       else r["status"])
            print(f"{r['flags'] or '(defaults)'} seed {r['seed']}: {outcome}", flush=True)
            done.append(r)
    wanted = {" ".join(f) for f in grid_flags(args.grid)}
    print(table([r for r in done if r["variant"] == args.variant and r["flags"] in wanted]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
