"""How fast is lab5's training step? Steps per second against an eager reference, in one process.

For each variant and batch size it times the report's loop (one critic update per generator
update, RMSprop, g-first) three ways:

  compiled   lab5's step through torch.compile, as the variant scripts run it
  uncompiled lab5's step run eagerly (--no-compile)
  reference  tests/eager_reference.py: nn.Sequential + torch.optim + .backward(), the penalty
             through autograd.grad(create_graph=True) -- the way the report wrote it

in alternating repetitions, and reports the median of each and the ratios to the reference: the
machines are shared and noisy, so only numbers measured side by side are compared. It also
measures the compile warm-up with a cold and a warm inductor cache (each in a fresh process),
seed ensembles (E models in one vmapped compiled step against one model), and the floor that
the machine's matrix-multiply rate puts under a step.

    python bench/speed.py                                  # everything (about 10 minutes on 2 cores)
    python bench/speed.py --variants wgan_gp --batch-sizes 64 --skip-warm-up --skip-ensembles
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import lab5  # noqa: E402
from tests.eager_reference import make_reference, reference_step  # noqa: E402

REPORT_LOOP = ["--n-critic", "1", "--order", "g-first", "--init", "torch", "--optimizer", "rmsprop"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def setup(variant: str, batch_size: int, device: torch.device, seeds: int = 1):
    """The config, a fresh training state and one epoch of batches, as a run would have them."""
    cfg = lab5.parse_config(variant, [*REPORT_LOOP, "--batch-size", str(batch_size), "--seeds", str(seeds)])
    members = lab5.member_configs(cfg)
    state = lab5.init_members(members, device)
    steps = cfg["train_size"] // batch_size
    train = torch.rand(cfg["train_size"], 2, generator=torch.Generator().manual_seed(0))
    batches = lab5.members_batches(train, members, steps, [lab5.make_rng(m["seed"], "train") for m in members], device)
    return cfg, state, [{k: v[i] for k, v in batches.items()} for i in range(steps)]


def lab5_runner(step, state, batches, device):
    def run() -> float:
        s, t0 = state, time.perf_counter()
        for b in batches:
            s, metrics = step(s, b)
        next(iter(metrics.values())).sum().item()  # waits for the device, once
        return time.perf_counter() - t0
    return run


def reference_runner(cfg, state, batches, device):
    ref = make_reference(cfg, state["g"], state["d"])  # keeps training across repetitions: same shapes, same work

    def run() -> float:
        t0 = time.perf_counter()
        for b in batches:
            metrics = reference_step(ref, b)
        metrics["g_loss"].item()
        return time.perf_counter() - t0
    return run


def alternate(runners: dict, steps: int, reps: int) -> dict:
    """Median steps/s of each runner over `reps` rounds, each round running all of them in turn."""
    times = {name: [] for name in runners}
    for _ in range(reps):
        for name, run in runners.items():
            times[name].append(run())
    return {name: steps / statistics.median(ts) for name, ts in times.items()}


def step_speed(variant: str, batch_size: int, device, reps: int) -> dict:
    cfg, state, batches = setup(variant, batch_size, device)
    compiled = lab5.compile_step(lab5.make_train_step(cfg), device)
    compiled(state, batches[0])  # compile outside the timing
    runners = {"compiled": lab5_runner(compiled, state, batches, device),
               "uncompiled": lab5_runner(lab5.make_train_step(cfg), state, batches, device),
               "reference": reference_runner(cfg, state, batches, device)}
    for run in runners.values():
        run()  # first touches (allocator, caches) outside the timing
    return alternate(runners, len(batches), reps)


def ensemble_speed(variant: str, batch_size: int, seeds: int, device, reps: int) -> dict:
    """Model-steps/s of one compiled model and of `seeds` models in one vmapped compiled step."""
    runners, steps = {}, None
    for e in (1, seeds):
        cfg, state, batches = setup(variant, batch_size, device, seeds=e)
        step = lab5.compile_step(vmap(lab5.make_train_step(cfg)), device)
        step(state, batches[0])
        runners[e] = lab5_runner(step, state, batches, device)
        runners[e]()
        steps = len(batches)
    per_second = alternate(runners, steps, reps)
    return {"single": per_second[1], "ensemble": per_second[seeds] * seeds}


def warm_up_seconds(variant: str, batch_size: int, device: str, cache: str) -> float:
    """Seconds to the end of the first compiled step, in a fresh process with `cache` as the
    inductor's on-disk cache."""
    code = ("import sys, time; t0 = time.perf_counter(); sys.argv = ['speed.py']; "
            f"sys.path.insert(0, {str(ROOT / 'bench')!r}); import speed, torch; "
            f"speed.first_step({variant!r}, {batch_size}, torch.device({device!r})); "
            "print(time.perf_counter() - t0)")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def first_step(variant: str, batch_size: int, device) -> None:
    cfg, state, batches = setup(variant, batch_size, device)
    _, metrics = lab5.compile_step(lab5.make_train_step(cfg), device)(state, batches[0])
    metrics["g_loss"].item()


class CountFlops(TorchDispatchMode):
    """Adds up the FLOPs of every operation that torch's flop counter knows (the matrix
    multiplies), as they run. torch.utils.flop_counter.FlopCounterMode itself cannot follow the
    penalty's torch.func.grad nested in another grad."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        count = flop_registry.get(func._overloadpacket)
        if count:
            self.total += count(*args, **(kwargs or {}), out_val=out)
        return out


def step_flops(variant: str, batch_size: int) -> int:
    cfg, state, batches = setup(variant, batch_size, torch.device("cpu"))
    with CountFlops() as counter:
        lab5.make_train_step(cfg)(state, batches[0])
    return counter.total


def matmul_rate(device, n: int = 2048, reps: int = 5) -> float:
    """FLOP/s of a large float32 matrix multiply: the most this machine does with the step's
    main operation."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine(device) -> str:
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return (f"{what}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(lab5.VARIANTS), choices=lab5.VARIANTS)
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256])
    p.add_argument("--reps", type=int, default=7, help="alternating repetitions; the median counts")
    p.add_argument("--seeds", type=int, default=None, help="ensemble size (default: 8 on CPU, 64 on CUDA)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--skip-warm-up", action="store_true", help="skip the cold/warm compile measurement")
    p.add_argument("--skip-ensembles", action="store_true", help="skip the ensemble measurement")
    p.add_argument("--out", type=Path, default=None, help="markdown file for the tables (default: bench/results-<device>.md)")
    args = p.parse_args()
    device = lab5.resolve_device(args.device)
    seeds = args.seeds or (64 if device.type == "cuda" else 8)
    out = args.out or ROOT / "bench" / f"results-{device.type}.md"
    command = "python bench/speed.py " + " ".join(sys.argv[1:])
    lines = [f"# `{command.strip()}`", "", f"Machine: {machine(device)}.", ""]

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    emit(f"Steps per second of the report's loop (one critic update per generator update), median of "
         f"{args.reps} alternating repetitions of one epoch each; ratios to the eager reference:")
    emit()
    emit("| variant | batch | compiled | uncompiled | reference | compiled / reference | uncompiled / reference |")
    emit("|---|---|---|---|---|---|---|")
    for variant in args.variants:
        for batch_size in args.batch_sizes:
            r = step_speed(variant, batch_size, device, args.reps)
            emit(f"| {variant} | {batch_size} | {r['compiled']:.0f} | {r['uncompiled']:.0f} | {r['reference']:.0f} | "
                 f"**{r['compiled'] / r['reference']:.2f}×** | {r['uncompiled'] / r['reference']:.2f}× |")

    if not args.skip_warm_up:
        emit()
        emit("Compile warm-up (a fresh process to the end of its first step, batch 64), with an empty "
             "and then a filled inductor cache:")
        emit()
        emit("| variant | cold cache | warm cache |")
        emit("|---|---|---|")
        for variant in args.variants:
            with tempfile.TemporaryDirectory() as cache:
                cold = warm_up_seconds(variant, 64, device.type, cache)
                warm = warm_up_seconds(variant, 64, device.type, cache)
            emit(f"| {variant} | {cold:.1f} s | {warm:.1f} s |")

    if not args.skip_ensembles:
        emit()
        emit(f"Ensembles: model-steps per second of {seeds} seeds in one vmapped compiled step against one "
             "compiled model (batch 64):")
        emit()
        emit("| variant | one model | ensemble | ratio |")
        emit("|---|---|---|---|")
        for variant in args.variants:
            r = ensemble_speed(variant, 64, seeds, device, args.reps)
            emit(f"| {variant} | {r['single']:.0f} | {r['ensemble']:.0f} | **{r['ensemble'] / r['single']:.2f}×** |")

    emit()
    rate = matmul_rate(device)
    emit(f"The floor: a 2048×2048 float32 matrix multiply runs at {rate / 1e9:.1f} GFLOP/s here. One step at "
         "batch 64 needs (its matrix multiplies, counted op by op on the uncompiled step):")
    emit()
    emit("| variant | MFLOP per step | floor (steps/s at that rate) |")
    emit("|---|---|---|")
    for variant in args.variants:
        flops = step_flops(variant, 64)
        emit(f"| {variant} | {flops / 1e6:.1f} | {rate / flops:.0f} |")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
