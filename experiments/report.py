"""\
The lab report's experiments, and the ones that explain them, as commands with tables and figures.

    python experiments/report.py variants     # GAN vs WGAN vs WGAN-GP: lab5's defaults and the
                                              # report's loop
    python experiments/report.py optimizers   # GAN with SGD vs RMSprop, 2000 epochs (200 read off
                                              # the same runs)
    python experiments/report.py wgan_gp      # which setting decides whether WGAN-GP fits, and
                                              # how fast
    python experiments/report.py toys         # the three variants on PacGAN's 2D-ring and 2D-grid
                                              # at the report's settings
    python experiments/report.py ring         # the toy benchmark: tuned GAN, WGAN and WGAN-GP on
    python experiments/report.py grid         # the ring / the grid, beside the published tables
    python experiments/report.py all

Every configuration trains --seeds models in one vmapped ensemble (seeds 0 ... N-1). The script
writes results/<label>/<experiment>.md (mean ± standard error over seeds of the final W1 / noise
floor, W1 / floor at the report's epochs 30 and 70, epochs to fit, precision and recall, and the
mode metrics on the toys) and figures beside it: W1 / floor per epoch with a band of ± one
standard error per configuration, and a grid of frames at epochs 10, 30, 70 and 200. Runs go to
runs/experiments/<label>/; a configuration whose run is complete is not trained again (--force).
To repeat it all on another file: --data path/to/points.mat --label original.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from data.points import TOY_DATA
from errors import UserError
from experiments import processes, runner, sample
from experiments.extras import optuna
from experiments.results import mean_se, member_results, training_values
from harness import run_folder
from harness.cli import strict_parser
from harness.evaluation import MODE_COLUMNS
from harness.flags import as_json, parse_config, with_added_flags

ROOT = Path(__file__).resolve().parents[1]

REPORT = ["--preset", "report"]  # the report's loop, literally (harness/presets.py)
# lab5's first defaults (docs/defaults.md), with which §2-§4 of RESULTS.md were measured:
# pinned, so that those commands still make those tables under today's defaults.
FIRST_DEFAULTS = {
    "gan": ["--batch-size", "64", "--n-critic", "5", "--ema", "0"],
    "wgan": ["--batch-size", "64", "--clip", "0.1", "--ema", "0", "--order", "g-first"],
    "wgan_gp": ["--batch-size", "32", "--ema", "0", "--rms-alpha", "0.99"],
}
FRAME_EPOCHS = (10, 30, 70, 200)
# A seed whose final W1 is this many times the noise floor has lost part of the distribution: on
# points.mat the seeds that fit end within 3×, the ones that collapse onto part of it at 10×-25×.
COLLAPSED = 5.0


# WGAN-GP's fast start (--preset fast, RESULTS.md §8) beside the same start at penalty 0.1,
# which missed epoch 30 in 4 of 144 seed-runs and stays for comparison.
FAST_START_AT_0_1 = ["--preset", "fast", "--anneal", "lr=0.0005,gp_weight=0.1,ema=0.99"]


# The published rows the toy tables stand beside, as printed there: model, source, runs, then for
# the ring and for the grid modes captured, high quality (%), reverse KL (mean ± s.e. over PacGAN's
# 10 trials; VEEGAN and GDPP give the mean of 5 runs and no reverse KL).
PUBLISHED = [
    (
        "GAN",
        "PacGAN, Table 1",
        10,
        ("6.3 ± 0.5", "98.2 ± 0.2", "0.45 ± 0.09"),
        ("17.3 ± 0.8", "94.8 ± 0.7", "0.70 ± 0.07"),
    ),
    (
        "PacGAN4",
        "PacGAN, Table 1",
        10,
        ("7.8 ± 0.1", "95.9 ± 1.4", "0.07 ± 0.02"),
        ("24.8 ± 0.2", "93.6 ± 0.6", "0.04 ± 0.01"),
    ),
    ("Unrolled GAN", "VEEGAN, Table 1", 5, ("7.6", "35.6", "—"), ("23.6", "16.0", "—")),
    ("VEEGAN", "VEEGAN, Table 1", 5, ("8.0", "52.9", "—"), ("24.6", "40.0", "—")),
    ("WGAN-GP", "GDPP, Table 1", 5, ("6.8", "59.6", "—"), ("24.2", "28.7", "—")),
    ("GDPP-GAN", "GDPP, Table 1", 5, ("8.0", "71.7", "—"), ("24.8", "68.5", "—")),
]
PUBLISHED_TOYS = ("ring8", "grid25")  # the order of PUBLISHED's two groups of cells
TOY_EPOCHS = 150  # the toy preset's; the anneal spans the run


def toy_flags(toy: str, epochs: int = TOY_EPOCHS) -> list[str]:
    """A toy benchmark row's flags (--preset toy, RESULTS.md §4.1) on `toy`, for `epochs`."""
    longer = ["--epochs", str(epochs), "--anneal-epochs", str(epochs)]
    return ["--preset", "toy", "--data", toy, *(longer if epochs != TOY_EPOCHS else [])]


def toy_benchmark(toy: str, title: str) -> dict:
    labels = {"gan": "GAN", "wgan": "WGAN", "wgan_gp": "WGAN-GP"}
    modes = len(TOY_DATA[toy]["means"])
    codes = [*toy_flags(toy, 200), "--codes", str(modes)]
    with_codes = f"WGAN-GP 200 epochs with {modes} codes"
    return {
        "title": title,
        "toy": toy,
        "epochs": TOY_EPOCHS,
        "seeds": 10,
        "eval_every": 10,
        "configs": [
            *((labels[v], v, toy_flags(toy)) for v in labels),
            # the search's longer schedule: near the budget on the ring
            ("WGAN-GP 200 epochs", "wgan_gp", toy_flags(toy, 200)),
            # a categorical code beside z, one per mode: the generator may jump between modes
            (with_codes, "wgan_gp", codes),
        ],
        # sampling-time corrections of trained rows (experiments/sample.py): label, the row
        # whose run it samples, sample.py's flags
        "sampled": [
            ("WGAN-GP 200 epochs, rejection sampling", "WGAN-GP 200 epochs", []),
            ("WGAN-GP 200 epochs, latent MALA", "WGAN-GP 200 epochs", ["--method", "mala"]),
            (f"{with_codes}, rejection sampling", with_codes, []),
        ],
        "frames": [*labels.values(), "WGAN-GP 200 epochs"],
        "frame_epochs": (10, 50, 100, TOY_EPOCHS),
        "show_flags": True,
    }


EXPERIMENTS = {
    "variants": {
        "title": "GAN, WGAN and WGAN-GP, 200 epochs",
        "epochs": 200,
        "configs": [
            ("GAN", "gan", []),
            ("WGAN", "wgan", []),
            ("WGAN-GP", "wgan_gp", []),
            ("GAN, report's loop", "gan", REPORT),
            ("WGAN, report's loop", "wgan", REPORT),
            ("WGAN-GP, report's loop", "wgan_gp", REPORT),
        ],
        "frames": ["GAN", "WGAN", "WGAN-GP"],
    },
    "optimizers": {
        "title": "GAN with RMSprop and with SGD (both lr 1e-4), 2000 epochs",
        "epochs": 2000,
        "configs": [
            ("GAN, RMSprop", "gan", FIRST_DEFAULTS["gan"]),
            ("GAN, SGD", "gan", [*FIRST_DEFAULTS["gan"], "--optimizer", "sgd"]),
        ],
        "frames": ["GAN, RMSprop", "GAN, SGD"],
        "frame_epochs": (100, 200, 1000, 2000),
    },
    "wgan_gp": {
        "title": "WGAN-GP: the report's loop, one change at a time, 200 epochs",
        "epochs": 200,
        "configs": [
            ("report's loop (penalty 0.001)", "wgan_gp", REPORT),
            ("penalty 0.1", "wgan_gp", [*REPORT, "--gp-weight", "0.1"]),
            ("penalty 10", "wgan_gp", [*REPORT, "--gp-weight", "10"]),
            ("order g-first", "wgan_gp", [*REPORT, "--order", "g-first"]),
            ("order d-first", "wgan_gp", [*REPORT, "--order", "d-first"]),
            ("5 critic steps", "wgan_gp", [*REPORT, "--n-critic", "5"]),
            ("He init", "wgan_gp", [*REPORT, "--init", "kaiming"]),
            ("batch 32", "wgan_gp", [*REPORT, "--batch-size", "32"]),
            ("noise dim 2", "wgan_gp", [*REPORT, "--noise-dim", "2"]),
            (
                "g-first + penalty 10",
                "wgan_gp",
                [*REPORT, "--order", "g-first", "--gp-weight", "10"],
            ),
            ("lab5's first defaults", "wgan_gp", FIRST_DEFAULTS["wgan_gp"]),
        ],
        "frames": ["report's loop (penalty 0.001)", "penalty 10", "lab5's first defaults"],
    },
    "fast_start": {
        "title": "WGAN-GP by epoch 30: the defaults and two fast starts with a cooldown",
        "epochs": 200,
        "configs": [
            ("WGAN-GP, lab5's defaults", "wgan_gp", []),
            ("start at penalty 0.1, cooldown", "wgan_gp", FAST_START_AT_0_1),
            ("start at penalty 0.3, cooldown", "wgan_gp", ["--preset", "fast"]),
        ],
        "frames": [
            "WGAN-GP, lab5's defaults",
            "start at penalty 0.1, cooldown",
            "start at penalty 0.3, cooldown",
        ],
        "targets": True,
        "show_flags": True,
    },
    "toys": {
        "title": "The three variants on PacGAN's 2D-ring (8 modes) and 2D-grid (25 modes), "
        "200 epochs",
        "epochs": 200,
        "configs": [
            (f"{name}, {toy}", variant, ["--data", toy, *FIRST_DEFAULTS[variant]])
            for toy in ("ring8", "grid25")
            for name, variant in (("GAN", "gan"), ("WGAN", "wgan"), ("WGAN-GP", "wgan_gp"))
        ],
        "frames": ["GAN, ring8", "WGAN-GP, ring8", "GAN, grid25", "WGAN-GP, grid25"],
    },
    "ring": toy_benchmark(
        "ring8", "The toy benchmark on PacGAN's 2D-ring: 8 Gaussians, s.d. 0.01, radius 1"
    ),
    "grid": toy_benchmark(
        "grid25", "The toy benchmark on PacGAN's 2D-grid: 25 Gaussians, s.d. 0.05, spacing 2"
    ),
}


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def plan_row(
    variant: str,
    flags: list[str],
    spec: dict,
    epochs: int,
    seeds: list[int],
    data: str | None,
    out: Path,
) -> dict:
    """One configuration's command (the variant script's flags that train its ensemble, less
    --out), its folder and the config it resolves to; a bad flag is a one-line error."""
    frame_every = min(spec.get("frame_epochs", FRAME_EPOCHS))
    argv = [
        *flags,
        *(["--data", data] if data and "--data" not in flags else []),
        *(["--epochs", str(epochs)] if "--epochs" not in flags else []),
        "--seed",
        str(seeds[0]),
        "--seeds",
        str(len(seeds)),
        "--eval-every",
        str(spec.get("eval_every", 5 if epochs <= 200 else 50)),
        "--frame-every",
        str(frame_every),
    ]
    return {
        "variant": variant,
        "argv": argv,
        "out": out,
        "cfg": parse_config(variant, [*argv, "--out", str(out), "--overwrite"]),
    }


def finished_record(row: dict) -> dict | None:
    """The record of a finished run of the row's configuration in its folder, if there is
    one: experiment.json records the command, every value it resolved to (so a changed
    default trains again) and how it ended."""
    done = row["out"] / "experiment.json"
    saved = json.loads(done.read_text()) if done.exists() else {}
    written = with_added_flags(saved.get("config", {}), row["variant"])
    same = training_values(written) == training_values(row["cfg"])
    if saved.get("variant") != row["variant"] or not same:
        return None
    print(f"{row['out']}: finished, not trained again", flush=True)
    return {"path": str(row["out"]), "status": "completed", **saved}


def record_run(row: dict) -> dict:
    """experiment.json for a row just trained. A run in which a member diverged ends there
    and is reported as such, not retried."""
    end = run_folder.run_end(row["out"])
    if end["status"] not in ("completed", "diverged"):
        log = processes.log_path(row["out"])
        raise UserError(f"{row['out']} ended {end['status']} (see {log})")
    record = {
        "variant": row["variant"],
        "argv": row["argv"],
        "config": as_json(row["cfg"]),
        "path": str(row["out"]),
        **end,
    }
    (row["out"] / "experiment.json").write_text(json.dumps(record))
    return record


def train_rows(rows: dict[str, dict], name: str, args, seeds: int) -> None:
    """Train the rows' ensembles as the trials of one study (experiments/runner.py), --workers
    at a time; the same command started elsewhere with the same --storage (and the runs on a
    shared disk) trains some of them there. The study is named by what the rows train, so a
    changed default makes a new one; --force starts it again."""
    by_slug = {slug(label): row for label, row in rows.items()}
    values = json.dumps([training_values(r["cfg"]) for r in rows.values()], sort_keys=True)
    study_name = f"report_{args.label}_{name}_{hashlib.sha256(values.encode()).hexdigest()[:8]}"
    storage = runner.make_storage(args.storage, args.beat)
    if args.force and study_name in optuna.get_all_study_names(storage):
        optuna.delete_study(study_name=study_name, storage=storage)
    spec = {"command": command_line(name, args, seeds)}
    points = [{"configuration": s} for s in by_slug]
    study = runner.open_study(storage, study_name, spec, points, None, None)

    def job(trial) -> runner.Job:
        row = by_slug[trial.suggest_categorical("configuration", list(by_slug))]
        on_gpu = ["--device", "cuda"] if args.gpus else []
        return runner.Job(row["variant"], [*row["argv"], *on_gpu], row["out"])

    plan = runner.Plan(
        job=job,
        trials=len(points),
        prune=False,
        slots=runner.slots(args),
        beat_s=args.beat,
        objective=processes.objective,
        results=run_folder.run_end,
    )
    runner.drive(study, storage, plan)


def markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(row) + " |" for row in [head, *rows]]
    return [lines[0], "|" + "---|" * len(head), *lines[1:]]


def result_cells(label: str, rs: list[dict], at_epochs: tuple, modes: bool) -> list[str]:
    """A configuration's row of the experiment table, from its members' results."""
    fitted = [r["fit"] for r in rs if r["fit"] is not None]
    first = [r["first"] for r in rs if r["first"] is not None]
    cells = [
        label,
        str(len(rs)),
        mean_se(r["final"] for r in rs),
        f"{np.median([r['final'] for r in rs]):.2f}",
        str(sum(r["final"] > COLLAPSED for r in rs)),
        *(mean_se([r["w1_by_epoch"].get(e) for r in rs]) for e in at_epochs),
        f"{mean_se(first, 0)} ({len(first)}/{len(rs)})",
        f"{mean_se(fitted, 0)} ({len(fitted)}/{len(rs)})",
        mean_se(r["precision"] for r in rs),
        mean_se(r["recall"] for r in rs),
    ]
    if modes:
        cells += [
            mean_se(r.get("modes") for r in rs),
            mean_se(100 * r["hq"] for r in rs if "hq" in r) + " %",
            mean_se(r.get("reverse_kl") for r in rs),
        ]
    return cells


def table(
    results: dict[str, list[dict]], epochs: int, diverged: dict[str, str] | None = None
) -> list[str]:
    """One row per configuration; a configuration in which a member diverged says so instead
    of reporting numbers from the epoch before (which would flatter it)."""
    modes = any("modes" in r for rs in results.values() for r in rs)
    at_epochs = (30, 70) if epochs == 200 else (200,)
    head = ["configuration", "seeds", "final W1 / floor", "median", f"collapsed (> {COLLAPSED:g}×)"]
    head += [f"at epoch {e}" for e in at_epochs]
    head += ["first within 2× (seeds)", "epochs to fit (fitted)", "precision", "recall"]
    head += ["modes", "high quality", "reverse KL"] if modes else []
    rows = []
    for label, rs in results.items():
        if label in (diverged or {}):
            rows.append([label, str(len(rs)), diverged[label], *["—"] * (len(head) - 3)])
        else:
            rows.append(result_cells(label, rs, at_epochs, modes))
    return markdown_table(head, rows)


def late_jump(energy_by_epoch: dict[int, float], epochs: int) -> float:
    """The largest rise of the energy distance in the second half of a run: a value over the
    lowest before it there (a generator that leaves the data late: RESULTS.md §8)."""
    late = [v for e, v in sorted(energy_by_epoch.items()) if e > epochs // 2]
    return max(v / min(late[: i + 1]) for i, v in enumerate(late))


def target_cells(label: str, rs: list[dict], epochs: int, last: int, jump: float) -> list[str]:
    at30 = [r["w1_by_epoch"].get(30) for r in rs]  # None: not measured there
    ends = [np.mean([v for e, v in r["w1_by_epoch"].items() if e >= epochs - last]) for r in rs]
    by30 = sum(r["first"] is not None and r["first"] <= 30 for r in rs)
    jumps = [late_jump(r["energy_by_epoch"], epochs) for r in rs]
    return [
        label,
        "—" if None in at30 else f"{np.mean(at30):.2f} ({max(at30):.2f})",
        f"{by30} of {len(rs)}",
        f"{mean_se(r['final'] for r in rs)} ({max(r['final'] for r in rs):.2f})",
        f"{sum(r['final'] > 2 for r in rs)} of {len(rs)}",
        f"{np.mean(ends):.2f} ({max(ends):.2f})",
        f"{max(jumps):.1f}× ({sum(j >= jump for j in jumps)} of {len(rs)})",
    ]


def target_table(
    results: dict[str, list[dict]], epochs: int, last: int = 50, jump: float = 10.0
) -> list[str]:
    """Against WGAN-GP's targets (RESULTS.md §8): every seed within 2× of the floor by epoch 30,
    the final W1 in the mean and in the worst seed; the last epochs say whether the final one is
    typical of the run's end, and the late jumps what can make it untypical."""
    head = [
        "configuration",
        "at epoch 30: mean (worst)",
        "within 2× by epoch 30",
        "final: mean ± s.e. (worst)",
        "above 2× at the end",
        f"epochs {epochs - last}–{epochs}: mean (worst seed)",
        f"late jumps: largest (seeds ≥ {jump:g}×)",
    ]
    rows = [target_cells(label, rs, epochs, last, jump) for label, rs in results.items()]
    return markdown_table(head, rows)


def toy_cells(label: str, rs: list[dict], total: int, minutes: float | None) -> list[str]:
    calls = np.mean([r.get("calls", 1.0) for r in rs])
    return [
        label,
        "lab5",
        str(len(rs)),
        mean_se(r["modes"] for r in rs),
        mean_se((100 * r["hq"] for r in rs), 1),
        mean_se((r["reverse_kl"] for r in rs), 3),
        f"{sum(r['modes'] == total for r in rs)}/{len(rs)}",
        mean_se(r["final"] for r in rs),
        f"{calls:.2f}" if calls != 1 else "1",
        "—" if minutes is None else f"{minutes:.1f}",
    ]


def toy_table(
    results: dict[str, list[dict]],
    minutes: dict[str, float],
    toy: str,
    floor: dict,
    diverged: dict[str, str] | None = None,
) -> list[str]:
    """Ours (mean ± s.e. over seeds, the minutes each 10-seed ensemble took), then what samples
    of the training points score (the noise floor's mode metrics, mean over its draws), then the
    published rows of the same mixture, in the papers' columns."""
    total = len(TOY_DATA[toy]["means"])
    head = ["model", "source", "runs", f"modes (of {total})", "high quality (%)", "reverse KL"]
    head += ["all modes (runs)", "W1 / floor", "G calls / point", "CPU minutes"]
    rows = []
    for label, rs in results.items():
        if label in (diverged or {}):
            rows.append([label, "lab5", str(len(rs)), diverged[label], *["—"] * (len(head) - 4)])
        else:
            rows.append(toy_cells(label, rs, total, minutes[label]))
    rows.append(
        [  # what a perfect sampler scores
            "training points (a perfect generator)",
            "lab5",
            str(floor["draws"]),
            f"{floor['modes']:.2f}",
            f"{100 * floor['hq']:.1f}",
            f"{floor['reverse_kl']:.3f}",
            "—",
            "1",
            "—",
            "—",
        ]
    )
    for model, source, runs, *cells in PUBLISHED:
        published = cells[PUBLISHED_TOYS.index(toy)]
        rows.append([model, source, str(runs), *published, *["—"] * 4])
    return markdown_table(head, rows)


def band_figure(
    results: dict[str, list[dict]], title: str, path: Path, log_x: bool = False
) -> None:
    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = matplotlib.colormaps["tab10" if len(results) <= 10 else "tab20"].colors
    for color, (label, rs) in zip(colors, results.items()):
        epochs = sorted(set.intersection(*(set(r["w1_by_epoch"]) for r in rs)))
        values = np.array([[r["w1_by_epoch"][e] for e in epochs] for r in rs])
        mean = values.mean(0)
        se = values.std(0, ddof=1) / np.sqrt(len(rs)) if len(rs) > 1 else np.zeros_like(mean)
        x = np.maximum(epochs, 1) if log_x else epochs
        ax.plot(x, mean, lw=1.4, color=color, label=label)
        ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.2, lw=0)
    ax.axhline(1, color="black", ls=":", lw=1, label="noise floor")
    ax.set(
        yscale="log",
        xscale="log" if log_x else "linear",
        xlabel="epoch",
        ylabel="W1 / noise floor (mean ± s.e. over seeds)",
        title=title,
    )
    ax.legend(fontsize=8, ncols=2)
    fig.savefig(path)


def frame_grid(
    runs: dict[str, Path], labels: list[str], epochs, path: Path, member: str = "seed0"
) -> None:
    """One member's frames of some configurations side by side at the same epochs."""
    fig = Figure(figsize=(3.2 * len(epochs), 2.1 * len(labels)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(labels), len(epochs), squeeze=False)
    for row, label in zip(axes, labels):
        for ax, epoch in zip(row, epochs):
            frame = runs[label] / member / "frames" / f"epoch_{epoch:04d}.png"
            ax.set_axis_off()
            if not frame.exists():  # the run diverged before this epoch
                ax.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax.transAxes)
                continue
            ax.imshow(np.asarray(Image.open(frame).convert("RGB")))
            ax.set_title(f"{label}, epoch {epoch}", fontsize=8)
    fig.savefig(path)


def caption(spec: dict, floor: dict, seeds: list[int]) -> str:
    what = f"Mean ± standard error over {len(seeds)} seeds ({seeds[0]}–{seeds[-1]}). "
    if "toy" in spec:
        return what + (
            "A generated point is of **high quality** within 3 standard deviations of its "
            "nearest mode; a mode is **captured** with at least one such point; **reverse KL** is "
            "KL(the high-quality points' modes ‖ uniform). lab5 counts 2,500 generated points "
            "per run at the last epoch; W1 / floor is measured on 1,000 held-out points "
            f'(floor W1 = {floor["w1"]:.4f} ± {floor["w1_sd"]:.4f}). "G calls / point": '
            "generator evaluations per point (rejection sampling: proposals per point kept; "
            "latent MALA: one and one per move, each a forward and a backward pass). "
            f'"CPU minutes": the CPU time of the whole {len(seeds)}-seed ensemble on this 2-core '
            "CPU (its training process on one thread and its recorder beside it; compiling, "
            "measuring and sampling included)."
        )
    return (
        f"Noise floor of the first configuration's data: W1 = {floor['w1']:.4f} ± "
        f"{floor['w1_sd']:.4f}; precision {floor['precision']:.3f}, recall "
        f"{floor['recall']:.3f}. " + what + '"First within 2×": the first epoch at which '
        'W1 is within 2× the floor; "epochs to fit": the first from which it stays there to '
        'the end; both over the seeds that got there. "Collapsed": seeds that end beyond '
        "5× the floor."
    )


def plan_experiment(name: str, args) -> dict:
    """The experiment's configurations (--only's), seeds, epochs and where they go; every row
    planned before any trains, so that a bad flag in the last stops the experiment at once."""
    spec = EXPERIMENTS[name]
    configs = [c for c in spec["configs"] if not args.only or slug(c[0]) in args.only]
    if args.only and len(configs) != len(args.only):
        raise UserError(
            f"--only names configurations that {name} does not have; it has: "
            + ", ".join(slug(c[0]) for c in spec["configs"])
        )
    epochs = args.epochs or spec["epochs"]
    seeds = list(range(args.seed, args.seed + (args.seeds or spec.get("seeds", 8))))
    runs_root = Path("runs/experiments") / args.label / name
    rows = {
        label: plan_row(variant, flags, spec, epochs, seeds, args.data, runs_root / slug(label))
        for label, variant, flags in configs
    }
    sampled = [row for row in spec.get("sampled", []) if row[1] in rows]
    return {
        "spec": spec,
        "configs": configs,
        "sampled": sampled,
        "epochs": epochs,
        "seeds": seeds,
        "rows": rows,
    }


def diverged_cells(records: dict[str, dict]) -> dict[str, str]:
    """What a table says of each configuration in which a member diverged."""
    return {
        label: f"diverged in epoch {r['epochs_done'] + 1} "
        f"({', '.join(r['diverged_members'] or [])})"
        for label, r in records.items()
        if r["status"] == "diverged"
    }


def draw_figures(plan: dict, name: str, runs: dict, results: dict, folder: Path) -> None:
    """W1 / floor per epoch with its band, and a grid of one member's frames."""
    spec = plan["spec"]
    epochs = plan["epochs"]
    band_figure(results, spec["title"], folder / f"{name}_w1.png", log_x=epochs > 200)
    frame_epochs = [e for e in spec.get("frame_epochs", FRAME_EPOCHS) if e <= epochs] or [epochs]
    # --only may leave out the usual ones
    shown = [label for label in spec["frames"] if label in runs] or list(runs)
    path = folder / f"{name}_frames.png"
    frame_grid(runs, shown, frame_epochs, path, f"seed{plan['seeds'][0]}")
    if plan["sampled"]:
        sampled_figure(plan, runs, folder / f"{name}_sampled.png", f"seed{plan['seeds'][0]}")


def sampled_figure(plan: dict, runs: dict[str, Path], path: Path, member: str) -> None:
    """One member's last frame of each sampled run, then its samples' frames (the classifier's
    log ratio beneath them)."""
    panels = {}
    for label, base, flags in plan["sampled"]:
        frames = runs[base] / member / "frames"
        last = sorted(frames.glob("epoch_*.png"))[-1]
        panels[f"{base}, epoch {int(last.stem.removeprefix('epoch_'))}"] = last
        name = sample.result_name(sample.parse_args([str(runs[base]), *flags]))
        panels[label] = frames / f"sampled_{name}.png"
    fig = Figure(figsize=(4.2 * len(panels), 2.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (label, frame) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items()):
        ax.set_axis_off()
        ax.imshow(np.asarray(Image.open(frame).convert("RGB")))
        ax.set_title(label, fontsize=8)
    fig.savefig(path)


def sampled_results(plan: dict, runs: dict[str, Path]) -> dict[str, list[dict]]:
    """Each sampled row's members, in member_result's keys: the samples that
    experiments/sample.py wrote into the run with the row's flags, or made now where there
    are none (or they were made with other settings)."""
    found = {}
    for label, base, flags in plan["sampled"]:
        args = sample.parse_args([str(runs[base]), *flags])
        folders = sample.member_folders(runs[base])
        saved = [
            run_folder.read_json(f / "sampled" / f"{sample.result_name(args)}.json")
            for f in folders
        ]
        if any(s.get("settings") != as_json(sample.settings(args)) for s in saved):
            print(f"{runs[base]}: sampling for {label!r}", flush=True)
            saved = sample.sample_run(args)
        found[label] = [
            {
                "final": s["w1_floor"],
                **{k: s[k] for k in MODE_COLUMNS},
                "calls": s["calls_per_point"],
                "cpu_s": s["cpu_s"],
            }
            for s in saved
        ]
    return found


def cpu_minutes(runs: dict[str, Path], name: str, args) -> dict[str, float | None]:
    """Each run's CPU minutes (its process's and its recorder's, as the driver that trained it
    measured them, from the experiment's studies): what the budget counts, and unlike the wall
    time not stretched by other work on the machine. None for a run no study trained."""
    storage = runner.make_storage(args.storage)
    prefix = f"report_{args.label}_{name}_"
    found = {}
    for study in (s for s in optuna.get_all_study_names(storage) if s.startswith(prefix)):
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
        for trial in (t for t in trials if "cpu_s" in t.user_attrs):
            found[trial.user_attrs["folder"]] = trial.user_attrs["cpu_s"] / 60
    return {label: found.get(str(path)) for label, path in runs.items()}


def toy_minutes(plan: dict, name: str, args, records: dict, sampled: dict) -> dict:
    """Each row's CPU minutes: its training's, and for a sampled row its sampling's too."""
    runs = {label: Path(r["path"]) for label, r in records.items()}
    minutes = cpu_minutes(runs, name, args)
    for label, base, _ in plan["sampled"]:
        sampling = sampled[label][0]["cpu_s"] / 60
        minutes[label] = None if minutes[base] is None else minutes[base] + sampling
    return minutes


def in_table_order(plan: dict, results: dict, sampled: dict) -> dict[str, list[dict]]:
    """The trained rows, each followed by the rows that sample its run."""
    ordered = {}
    for label, rs in results.items():
        ordered[label] = rs
        ordered.update({s: sampled[s] for s, base, _ in plan["sampled"] if base == label})
    return ordered


def report_lines(
    plan: dict, name: str, args, results: dict, records: dict, sampled: dict
) -> list[str]:
    """results/<label>/<name>.md: the command, the caption, the table, the settings, figures."""
    spec = plan["spec"]
    seeds = plan["seeds"]
    diverged = diverged_cells(records)
    floor = results[plan["configs"][0][0]][0]["floor"]
    if "toy" in spec:
        minutes = toy_minutes(plan, name, args, records, sampled)
        rows = toy_table(
            in_table_order(plan, results, sampled), minutes, spec["toy"], floor, diverged
        )
    else:
        rows = table(results, plan["epochs"], diverged)
    if spec.get("targets") and not diverged:
        rows += ["", "Against the targets:", "", *target_table(results, plan["epochs"])]
    head = [f"## {spec['title']}", "", f"`{command_line(name, args, len(seeds))}`", ""]
    settings = settings_lines(plan, spec, plan["epochs"], seeds)
    figures = [f"![W1 per epoch]({name}_w1.png)", "", f"![frames]({name}_frames.png)", ""]
    if plan["sampled"]:
        figures += [f"![sampled]({name}_sampled.png)", ""]
    return [*head, caption(spec, floor, seeds), "", *rows, "", *settings, *figures]


def run_experiment(name: str, args) -> None:
    plan = plan_experiment(name, args)
    results_dir = Path(args.results) / args.label
    results_dir.mkdir(parents=True, exist_ok=True)
    rows = plan["rows"]
    records = {label: None if args.force else finished_record(row) for label, row in rows.items()}
    todo = {label: row for label, row in rows.items() if records[label] is None}
    if todo and args.no_train:
        first = next(iter(todo.values()))["out"]
        raise UserError(
            f"{first} holds no finished run of this configuration (run without --no-train)"
        )
    if todo:
        train_rows(todo, name, args, len(plan["seeds"]))
        records.update({label: record_run(row) for label, row in todo.items()})
    runs = {label: Path(record["path"]) for label, record in records.items()}
    results = {label: member_results(run) for label, run in runs.items()}
    sampled = sampled_results(plan, runs)
    draw_figures(plan, name, runs, results, results_dir)
    lines = report_lines(plan, name, args, results, records, sampled)
    (results_dir / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines), flush=True)


def command_line(name: str, args, seeds: int) -> str:
    return (
        f"python experiments/report.py {name} --seeds {seeds}"
        + (f" --seed {args.seed}" if args.seed else "")
        + (f" --data {args.data} --label {args.label}" if args.data else "")
        + (f" --epochs {args.epochs}" if args.epochs else "")
        + (f" --only {','.join(args.only)}" if args.only else "")
    )


def settings_lines(plan: dict, spec: dict, epochs: int, seeds: list[int]) -> list[str]:
    """Each configuration's flags, for the tables whose rows differ in more than a label says;
    a sampled row's, sample.py's on its run."""
    if not spec.get("show_flags"):
        return []
    return [
        f"Settings (each row: the variant's script with these flags, `--seed {seeds[0]} "
        f"--seeds {len(seeds)}`, and `--epochs {epochs}` where they set none):",
        "",
        *(
            f"- {label}: `{' '.join(['python', f'variants/{variant}.py', *flags])}`"
            for label, variant, flags in plan["configs"]
        ),
        *(
            f"- {label}: `{' '.join(['python experiments/sample.py RUN', *flags])}` on the run "
            f"of {base}"
            for label, base, flags in plan["sampled"]
        ),
        "",
    ]


def parse_args() -> argparse.Namespace:
    p = strict_parser(description=__doc__.splitlines()[0])
    p.add_argument("experiments", nargs="+", choices=[*EXPERIMENTS, "all"])
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="models per configuration (default: 10 on the toy benchmarks, else 8)",
    )
    p.add_argument("--seed", type=int, default=0, help="the first of their seeds")
    p.add_argument(
        "--data", default=None, help="a MAT file or built-in data set instead of data/points.mat"
    )
    p.add_argument(
        "--label", default="shipped", help="names the data in results/ and runs/ (e.g. original)"
    )
    p.add_argument("--results", default="results", help="where the tables and figures go")
    p.add_argument(
        "--force", action="store_true", help="train again even where a complete run exists"
    )
    runner.add_flags(p, workers=1)
    p.add_argument(
        "--no-train",
        action="store_true",
        help="only write the tables and figures, from finished runs (safe while others train)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override every experiment's epochs (quick checks; a row that sets its own keeps it)",
    )
    p.add_argument(
        "--only",
        type=slugs,
        default=None,
        metavar="SLUG,SLUG",
        help="run these configurations only, named as their run folders are (e.g. penalty_10)",
    )
    return p.parse_args()


def slugs(text: str) -> list[str]:
    return text.split(",")


def main() -> int:
    try:
        args = parse_args()
        if runner.crowded_warning(args):
            print(runner.crowded_warning(args), file=sys.stderr)
        for name in EXPERIMENTS if "all" in args.experiments else args.experiments:
            run_experiment(name, args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
