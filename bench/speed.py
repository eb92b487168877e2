"""How fast is lab5? Every number is a ratio against a reference timed in the same invocation,
in alternating repetitions: the machines are shared and noisy, absolute times drift.

    python bench/speed.py                  # every section below (about 35 minutes on 2 cores)
    python bench/speed.py step runs        # some of them

Sections:
  step       steps/s of a step of one critic update per generator update (RMSprop, g-first)
             at batch 64 and 256: lab5's compiled step as a run calls it, the same step
             uncompiled, and tests/eager_reference.py (nn.Sequential, torch.optim, .backward())
             at 1 and at 2 threads; the ratio is against the faster reference
  compile    seconds to the end of the first compiled step, in a fresh process, with an empty and
             with a filled inductor cache
  ensembles  model-steps/s of E seeds in one vmapped compiled step against one model
  runs       whole runs, as processes: `variants/wgan_gp.py --n-critic 1 --batch-size 64` (frames
             and every metric on) with a filled and an empty inductor cache, against
             bench/eager_run.py doing the same 200 epochs with no frames or metrics
  defaults   each variant's default run: final W1, and wall time against compile warm-up +
             training (how much of the recording is hidden behind training)
  threads    training time at 1 and 2 threads with the recorder beside it
  floor      the machine's matrix-multiply rate, and the step's FLOPs at batch 64
  pictures   seconds to write runs/index.html and runs/compare.gif for the three variants'
             default runs (--runs DIR holding them, or trained first), against one run's GIF
  jax        lab5's whole WGAN-GP run (frames and metrics on) at its defaults and at the
             report's shape, against the JAX + optax peer's training (bench/jax_peer.py: an
             epoch as one lax.scan, and as a loop of the jitted step) and the eager script, as
             processes, alternating (pip install -r requirements-bench.txt)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch.func import vmap
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

import lab5
from errors import UserError
from harness import hardware, run_folder
from harness.cli import strict_parser
from harness.ensemble import member_configs
from harness.flags import VARIANTS, parse_config
from harness.main import fast_calls
from plots.compare import latest_runs
from plots.make_gifs import make_compare, make_gif
from plots.page import write_index
from tests.eager_reference import make_reference, reference_step

ROOT = Path(__file__).resolve().parents[1]

# The timed step: one critic update per generator update, the generator first, nn.Linear's init
ONE_TO_ONE = "--n-critic 1 --order g-first --init torch".split()


def first_member(tree):
    """An ensemble's first model (its state, or its batch) as a model alone has it."""
    return lab5.tree_map(lambda x: x[0], tree)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def setup(variant: str, batch_size: int, device: torch.device, seeds: int = 1):
    """The config, a fresh stacked training state and one epoch of batches, as a run has them."""
    cfg = parse_config(
        variant, [*ONE_TO_ONE, "--batch-size", str(batch_size), "--seeds", str(seeds)]
    )
    members = member_configs(cfg)
    state = lab5.init_members(members, device)
    train = torch.rand(7000, 2, generator=torch.Generator().manual_seed(0))  # the report's
    steps = len(train) // batch_size
    rngs = [lab5.make_rng(m["seed"], "train") for m in members]
    batches = lab5.members_batches(train, members, steps, rngs, device)
    return cfg, state, [{k: v[i] for k, v in batches.items()} for i in range(steps)]


def threads(n: int, run):
    """run, at n torch threads."""

    def timed() -> float:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            return run()
        finally:
            torch.set_num_threads(before)

    return timed


def lab5_runner(step, state, batches, device):
    def run() -> float:
        s = state
        started = time.perf_counter()
        for batch in batches:
            s, metrics = step(s, batch)
        sync(device)
        return time.perf_counter() - started

    return run


def reference_runner(cfg, state, batches, device):
    model = make_reference(cfg, *(first_member(state[k]) for k in ("g", "d")))
    single = [first_member(batch) for batch in batches]  # it keeps training: same work

    def run() -> float:
        started = time.perf_counter()
        for batch in single:
            reference_step(model, batch)
        sync(device)
        return time.perf_counter() - started

    return run


def alternate(runners: dict, steps: int, reps: int) -> dict:
    """Median steps/s of each runner over `reps` rounds, each round running all of them in turn."""
    times = {name: [] for name in runners}
    for _ in range(reps):
        for name, run in runners.items():
            times[name].append(run())
    return {name: steps / statistics.median(ts) for name, ts in times.items()}


def compiled_step(cfg: dict, state: dict, batch: dict, device, n_threads: int):
    """The step exactly as a run calls it: vmapped, compiled (at the thread count it will run
    at, which dynamo guards), warmed up, guards skipped."""
    step = lab5.compile_step(vmap(lab5.make_train_step(cfg)), device)
    threads(n_threads, lambda: step(state, batch))()
    return fast_calls(step)


def without_cuda_graphs(cfg: dict, state: dict, batch: dict, n_threads: int) -> Callable:
    """The compiled step launching its kernels one by one, what a CUDA graph is measured against.
    Its own code object (the lambda), so dynamo keeps it apart from the graphed step's."""
    vmapped = vmap(lab5.make_train_step(cfg))
    step = torch.compile(lambda s, b: vmapped(s, b), fullgraph=True, dynamic=False)
    threads(n_threads, lambda: step(state, batch))()
    return fast_calls(step)


def step_section(args, device) -> list[str]:
    graphs = device.type == "cuda"  # then the compiled step without its CUDA graphs too
    head = ["variant", "batch", "compiled", *(["no CUDA graphs"] if graphs else []), "uncompiled"]
    head += ["reference, 1 thread", "reference, 2 threads", "compiled / best reference"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant in args.variants:
        for batch_size in (64, 256):
            cfg, state, batches = setup(variant, batch_size, device)
            runners = {
                "compiled": compiled_step(cfg, state, batches[0], device, args.threads),
                **(
                    {"no graphs": without_cuda_graphs(cfg, state, batches[0], args.threads)}
                    if graphs
                    else {}
                ),
                "uncompiled": vmap(lab5.make_train_step(cfg)),
            }
            runners = {
                name: threads(args.threads, lab5_runner(step, state, batches, device))
                for name, step in runners.items()
            }
            for n in (1, 2):
                runners[f"reference{n}"] = threads(n, reference_runner(cfg, state, batches, device))
            for run in runners.values():
                run()  # first touches (allocator, caches) outside the timing
            r = alternate(runners, len(batches), args.reps)
            best = max(r["reference1"], r["reference2"])
            cells = [r[name] for name in runners]
            lines.append(
                f"| {variant} | {batch_size} | "
                + " | ".join(f"{c:,.0f}" for c in cells)
                + f" | **{r['compiled'] / best:.2f}×** |"
            )
    return lines


def first_step(variant: str, batch_size: int, device, vmapped: bool = True) -> None:
    cfg, state, batches = setup(variant, batch_size, device)
    if vmapped:
        compiled_step(cfg, state, batches[0], device, 1)
    else:  # the single-model step before ensembles of one: what the compile time is held to
        single = lab5.compile_step(lab5.make_train_step(cfg), device)
        single(first_member(state), first_member(batches[0]))
    sync(device)


def warm_up_seconds(variant: str, device: str, cache: str, vmapped: bool = True) -> float:
    """Seconds to the end of the first compiled step in a fresh process, imports included."""
    code = (
        "import sys, time; t0 = time.perf_counter(); sys.argv = ['speed.py']; "
        f"sys.path.insert(0, {str(ROOT / 'bench')!r}); import speed, torch; "
        f"speed.first_step({variant!r}, 64, torch.device({device!r}), {vmapped}); "
        "print(time.perf_counter() - t0)"
    )
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[-1])


def compile_section(args, device) -> list[str]:
    lines = [
        "| variant | empty cache | filled cache | the unvmapped step, empty cache |",
        "|---|---|---|---|",
    ]
    for variant in args.variants:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as single:
            cold = warm_up_seconds(variant, device.type, cache)
            warm = warm_up_seconds(variant, device.type, cache)
            unvmapped = warm_up_seconds(variant, device.type, single, vmapped=False)
        lines.append(f"| {variant} | {cold:.1f} s | {warm:.1f} s | {unvmapped:.1f} s |")
    return lines


def ensemble_section(args, device) -> list[str]:
    """Model-steps/s of each ensemble size against one model, in alternating repetitions."""
    lines = [
        "| variant | " + " | ".join(f"{e} seeds" for e in args.seeds) + " |",
        "|---|" + "---|" * len(args.seeds),
    ]
    for variant in args.variants:
        setups = {e: setup(variant, 64, device, seeds=e) for e in args.seeds}
        # compile_step empties dynamo's cache: wrap them all first, then compile each
        steps = {
            e: lab5.compile_step(vmap(lab5.make_train_step(cfg)), device)
            for e, (cfg, _, _) in setups.items()
        }
        runners = {}
        for e, (_, state, batches) in setups.items():
            threads(args.threads, partial(steps[e], state, batches[0]))()
            runners[e] = threads(
                args.threads, lab5_runner(fast_calls(steps[e]), state, batches, device)
            )
            runners[e]()
        rate = alternate(runners, len(batches), args.reps)
        one = rate[args.seeds[0]] * args.seeds[0]
        cells = [f"{rate[e] * e:,.0f} ({rate[e] * e / one:.2f}×)" for e in args.seeds]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def process_seconds(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, check=True, capture_output=True, env={**os.environ, **(env or {})}, cwd=ROOT
    )
    return time.perf_counter() - started


def runs_section(args, device) -> list[str]:
    """Whole runs of the literal loop at batch 64, lab5 (warm and cold cache) and the eager
    script, alternating; medians."""
    flags = ["--n-critic", "1", "--batch-size", "64", "--epochs", str(args.epochs)]
    with tempfile.TemporaryDirectory() as folder:
        lab5_run = [
            sys.executable,
            "variants/wgan_gp.py",
            *flags,
            "--device",
            device.type,
            "--out",
            f"{folder}/run",
            "--overwrite",
        ]
        eager = [sys.executable, "bench/eager_run.py", "wgan_gp", *flags]
        process_seconds(lab5_run)  # fills the default inductor cache
        times = {"warm": [], "cold": [], "eager": []}
        for rep in range(args.run_reps):
            times["warm"].append(process_seconds(lab5_run))
            cold = {"TORCHINDUCTOR_CACHE_DIR": f"{folder}/cache{rep}"}
            times["cold"].append(process_seconds(lab5_run, cold))
            times["eager"].append(process_seconds(eager))
    median = {name: statistics.median(ts) for name, ts in times.items()}
    return [
        "| process | wall (median) | eager script / this |",
        "|---|---|---|",
        *(
            f"| {name} | {median[name]:.1f} s | **{median['eager'] / median[name]:.2f}×** |"
            for name in ("warm", "cold", "eager")
        ),
    ]


def summary_of(argv: list[str]) -> dict:
    """The summary.json of a run of `variants/<argv[0]>.py argv[1:]`, as a process."""
    with tempfile.TemporaryDirectory() as folder:
        process_seconds([sys.executable, f"variants/{argv[0]}.py", *argv[1:], "--out", folder])
        return run_folder.read_summary(Path(folder))


def defaults_section(args, device) -> list[str]:
    """Each variant's default run (a first one-epoch run fills the compile cache)."""
    lines = [
        "| variant | final W1 / floor | wall | compile warm-up | training | recording "
        "(beside) | wall / (warm-up + training) |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in args.variants:
        summary_of([variant, "--device", device.type, "--epochs", "1"])
        data = ["--data", *args.data] if args.data else []
        s = summary_of([variant, "--device", device.type, *data])
        ratio = s["wall_s"] / (s["warm_up_s"] + s["train_s"])
        lines.append(
            f"| {variant} | {s['final']['w1'] / s['noise_floor']['w1']:.2f} | "
            f"{s['wall_s']:.1f} s | {s['warm_up_s']:.1f} s | {s['train_s']:.1f} s | "
            f"{s['record_s']:.1f} s | **{ratio:.2f}** |"
        )
    return lines


def threads_section(args, device) -> list[str]:
    """Training seconds of the literal loop (60 epochs) at 1 and 2 threads, the recorder
    beside it, for one model and for 8 seeds: which thread count trains fastest."""
    lines = ["| models | 1 thread | 2 threads |", "|---|---|---|"]
    for seeds in (1, 8):
        argv = [
            "wgan_gp",
            "--n-critic",
            "1",
            "--batch-size",
            "64",
            "--epochs",
            "60",
            "--seeds",
            str(seeds),
        ]
        seconds = {n: [] for n in (1, 2)}
        for _ in range(args.run_reps):
            for n in seconds:
                seconds[n].append(summary_of([*argv, "--threads", str(n)])["train_s"])
        lines.append(
            f"| {seeds} | "
            + " | ".join(f"{statistics.median(seconds[n]):.1f} s" for n in seconds)
            + " |"
        )
    return lines


class CountFlops(TorchDispatchMode):
    """Adds up the FLOPs of every operation torch's flop counter knows (the matrix multiplies)
    as they run; FlopCounterMode itself cannot follow the penalty's grad nested in a grad."""

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
        vmap(lab5.make_train_step(cfg))(state, batches[0])
    return counter.total


def matmul_rate(device, n: int = 2048, reps: int = 5) -> float:
    """FLOP/s of a large float32 matrix multiply: the most this machine does with the step's
    main operation."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    times = []
    for _ in range(reps + 1):
        sync(device)
        started = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times[1:])


def floor_section(args, device) -> list[str]:
    rate = matmul_rate(device)
    lines = [
        f"A 2048×2048 float32 matrix multiply: {rate / 1e9:.1f} GFLOP/s.",
        "",
        "| variant | MFLOP per step (batch 64) | steps/s at that rate |",
        "|---|---|---|",
    ]
    for variant in args.variants:
        flops = step_flops(variant, 64)
        lines.append(f"| {variant} | {flops / 1e6:.1f} | {rate / flops:,.0f} |")
    return lines


def pictures_section(args, device) -> list[str]:
    """The page and the comparison GIF of the default runs of the variants, each timed as the
    median of --reps, beside writing one run's own GIF (the reference)."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "runs"  # a copy of --runs: its own files are left as they are
        if args.runs:
            shutil.copytree(args.runs, root)
        for variant in [] if args.runs else args.variants:
            process_seconds(
                [
                    sys.executable,
                    f"variants/{variant}.py",
                    "--device",
                    device.type,
                    "--out",
                    str(root / variant),
                ]
            )
        runs = latest_runs(root)
        timed = {
            "runs/index.html": lambda: write_index(root),
            "runs/compare.gif": lambda: make_compare(runs, root),
            f"{runs[0].name}.gif (reference)": lambda: make_gif(runs[0]),
        }
        seconds = {
            name: statistics.median(timer(f) for _ in range(args.reps)) for name, f in timed.items()
        }
    reference = seconds[f"{runs[0].name}.gif (reference)"]
    lines = [
        f"Runs: {', '.join(r.name for r in runs)}.",
        "",
        "| file | seconds | × one GIF |",
        "|---|---|---|",
    ]
    return lines + [f"| {name} | {t:.2f} | {t / reference:.2f} |" for name, t in seconds.items()]


JAX_SHAPES = {
    "defaults (batch 16, g-first)": [],
    "report's shape (batch 64, 1:1, simultaneous)": "--batch-size 64 --order simultaneous".split(),
}


def timed_output(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - started, done.stdout


def race(flags: list[str], reps: int) -> dict[str, tuple[float, float, int]]:
    """Each process's median wall and training seconds, and the steps it trained."""
    with tempfile.TemporaryDirectory() as folder:
        run = [sys.executable, "variants/wgan_gp.py", *flags, "--out", f"{folder}/run"]
        peer = [sys.executable, "bench/jax_peer.py", "wgan_gp", *flags]
        commands = {
            "lab5, whole run": [*run, "--overwrite"],
            "JAX, epoch = one lax.scan": peer,
            "JAX, jitted step in a loop": [*peer, "--loop"],
            "eager script": [sys.executable, "bench/eager_run.py", "wgan_gp", *flags],
        }
        process_seconds(commands["lab5, whole run"])  # fills the default inductor cache
        times = {name: [] for name in commands}
        for _ in range(reps):
            for name, command in commands.items():
                wall, out = timed_output(command)
                summary = run_folder.read_summary(Path(folder) / "run")
                training = summary["train_s"] if name.startswith("lab5") else float(out.split()[-1])
                times[name].append((wall, training))
        config = run_folder.read_config(Path(folder) / "run")
    steps = config["steps_per_epoch"] * config["epochs"]
    return {
        name: (statistics.median(w for w, _ in ts), statistics.median(t for _, t in ts), steps)
        for name, ts in times.items()
    }


def jax_section(args, device) -> list[str]:
    """lab5's whole run against the JAX peer and the eager script, alternating; medians."""
    try:
        import jax  # noqa: F401 - only whether it is there
    except ImportError:
        return ["JAX is not installed here: pip install -r requirements-bench.txt"]
    lines = [
        "| shape | process | wall (median) | training | steps/s | JAX scan's wall / this |",
        "|---|---|---|---|---|---|",
    ]
    for shape, flags in JAX_SHAPES.items():
        found = race([*flags, "--epochs", str(args.epochs)], args.run_reps)
        scan_wall = found["JAX, epoch = one lax.scan"][0]
        for name, (wall, training, steps) in found.items():
            lines.append(
                f"| {shape} | {name} | {wall:.1f} s | {training:.1f} s | {steps / training:,.0f} "
                f"| **{scan_wall / wall:.2f}×** |"
            )
    return lines


def timer(f: Callable) -> float:
    started = time.perf_counter()
    f()
    return time.perf_counter() - started


SECTIONS = {
    "step": step_section,
    "compile": compile_section,
    "ensembles": ensemble_section,
    "runs": runs_section,
    "defaults": defaults_section,
    "threads": threads_section,
    "floor": floor_section,
    "pictures": pictures_section,
    "jax": jax_section,
}


def machine(device) -> str:
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        what = names[0] if names else platform.processor() or platform.machine()
    return (
        f"{what}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"Python {platform.python_version()}"
    )


def parse_args() -> argparse.Namespace:
    parser = strict_parser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"what to measure, of {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--reps", type=int, default=7, help="alternating repetitions (median)")
    parser.add_argument("--run-reps", type=int, default=2, help="repetitions of whole runs")
    parser.add_argument("--epochs", type=int, default=200, help="epochs of the whole runs")
    parser.add_argument("--threads", type=int, default=1, help="threads of lab5's step (a run's)")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="ensemble sizes (default: 1 8 on CPU, 1 8 64 256 on CUDA)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    add_inputs_and_output(parser)
    args = parser.parse_args()
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"no section {', '.join(unknown)}; there are {', '.join(SECTIONS)}")
    return args


def add_inputs_and_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        nargs=1,
        default=[],
        metavar="PATH",
        help="the defaults section on this points file (e.g. the original)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=None,
        help="pictures: a folder holding the variants' runs (default: train them)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown file for the tables (default: bench/results-<device>.md)",
    )


def main() -> int:
    try:
        args = parse_args()
        device = torch.device(hardware.place(args.device, hardware.gpu_facts()).device)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.seeds = args.seeds or ([1, 8, 64, 256] if device.type == "cuda" else [1, 8])
    command = " ".join(["python bench/speed.py", *sys.argv[1:]])
    lines = [f"# `{command}`", "", f"Machine: {machine(device)}.", ""]
    for name in args.sections or SECTIONS:
        section = [f"## {name}", "", *SECTIONS[name](args, device), ""]
        print("\n".join(section), flush=True)
        lines += section
    out = args.out or ROOT / "bench" / f"results-{device.type}.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
