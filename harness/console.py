"""What a run prints: a progress bar while it trains, and a line per measured epoch.

The bar (tqdm) shows only on a terminal; piped or redirected output gets the epoch lines alone.
Every line fits 100 columns.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Callable, NamedTuple

from tqdm import tqdm

from harness import hardware, settings
from harness.run import Run

COLUMNS = 100


def progress_bar(epochs: int, title: str, done: int = 0) -> tqdm:
    """Epochs done, time left and steps per second; silent when stdout is not a terminal."""
    width = min(COLUMNS, shutil.get_terminal_size((COLUMNS, 20)).columns or COLUMNS)
    return tqdm(
        total=epochs,
        initial=done,
        desc=title,
        unit="epoch",
        ncols=width,
        file=sys.stdout,
        disable=None,
        dynamic_ncols=False,
        leave=False,
        mininterval=0.5,
        bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining}{postfix}",
    )


def say(bar: tqdm | None, line: str, whole: bool = False) -> None:
    """A line above the bar, or on its own where there is none (yet); cut to the terminal's
    columns but where the whole of it matters (a warning, which says how to fix what it warns
    of)."""
    whole = whole or line.startswith("warning:")
    (bar or tqdm).write(line if whole else line[:COLUMNS], file=sys.stdout)


def compiled_line(message: dict, device: str) -> str:
    """What the end of compiling says: how long it took, or (one line, not the traceback) what
    failed, that the run goes on uncompiled and how to compile next time."""
    if "compile_failed" in message:
        return f"warning: {hardware.fallback_line(message['compile_failed'], device)}"
    return f"compiled in {message['warm_up_s']:.1f} s"


def advance(bar: tqdm | None, lines: list[str], message: dict, run: Run):
    """What a message from training shows: the recorder's lines, the end of compiling, and (from
    first epoch trained: for a resumed run, the one after its checkpoint's) the bar, moved on
    one epoch. Returns the bar."""
    for line in lines:
        say(bar, line)
    if "warm_up_s" in message:
        say(bar, compiled_line(message, run.device.type), whole=True)
    if message.get("epoch") and not message.get("resumed"):
        bar = bar or progress_bar(run.cfg["epochs"], run.cfg["variant"], message["epoch"] - 1)
        bar.set_postfix_str(f"{run.steps / message['seconds']:,.0f} steps/s", False)
        bar.update()
    return bar


class Progress(NamedTuple):
    show: Callable[[list[str], dict], None]  # the recorder's lines, and a message from training
    close: Callable[[], None]  # the bar goes, where there is one


def progress(run: Run) -> Progress:
    """What a run shows while it trains (show, above), holding its bar between messages."""
    bar = None

    def show_message(lines: list[str], message: dict) -> None:
        nonlocal bar
        bar = advance(bar, lines, message, run)

    def close() -> None:
        if bar is not None:
            bar.close()

    return Progress(show_message, close)


def times_floor(value: float, floor: float) -> str:
    return f" ({value / floor:.1f}× floor)" if floor > 0 else ""


def legend(floor: dict, blob: float, test_points: int, factor: float, models: int) -> list[str]:
    """What the epoch lines' numbers mean, said once as a run starts: W1 beside what a perfect
    generator and a generator of no shape score, and the cheaper numbers beside it."""
    return [
        f"W1: how far {test_points} generated points are from the {test_points} test points "
        "(mean distance, best matching)",
        f"  noise floor {floor['w1']:.4f} ± {floor['w1_sd']:.4f}: a perfect generator's W1 "
        f"(training points); fitted: within {factor:g}× it",
        f"  a Gaussian of the data's mean and covariance (no shape) scores {blob:.4f}"
        f"{times_floor(blob, floor['w1'])}: beat it",
        f"energy: a cheaper distance, every epoch (floor {floor['energy']:.5f})",
        "precision: share of generated points near test points; recall: share of test points near "
        "generated",
        *(
            [f"the numbers: the mean of the {models} models (± its standard error)"]
            if models > 1
            else []
        ),
    ]


def unfitted_line(failed: dict[str, float], models: int, blob: float, run: Run) -> str:
    """A run whose models ended no better than a Gaussian blob: which, and what to try."""
    w1 = ", ".join(f"{w:.4f}" for w in failed.values())
    who = f"{len(failed)} of {models} models ({', '.join(failed)}) end" if models > 1 else "ends"
    return (
        f"the fit failed: the run {who} with W1 {w1}, no better than a Gaussian blob's "
        f"{blob:.4f}; try more epochs (an epoch is one pass over the {len(run.train):,} training "
        f"points: {run.steps} steps here)"
    )


def epoch_line(epoch: int, epochs: int, row: dict, floor_w1: float) -> str:
    """One epoch of a run or an ensemble, from the mean (and standard error over members, after
    ±) of its metrics: `row` holds `<metric>_mean` and `<metric>_se`, and `members`."""
    w1 = row.get("w1_mean")
    spread = f" ± {row['w1_se']:.4f}" if w1 is not None and row["members"] > 1 else ""
    distance = f"  W1 {w1:.4f}{spread}{times_floor(w1, floor_w1)}" if w1 is not None else ""
    return (
        f"epoch {epoch:4d}/{epochs}{distance}  energy {row['energy_mean']:.5f}  "
        f"precision {row['precision_mean']:.2f}  recall {row['recall_mean']:.2f}"
    )


def short(path) -> str:
    """The path relative to the current folder, where that is shorter."""
    return min(str(path), os.path.relpath(path), key=len)


def plural(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def start_message(run: Run) -> str:
    """What a run is about to do, from the facts lab5 worked out for it."""
    cfg = run.cfg
    how = "uncompiled" if run.uncompiled_because else "compiled"
    threads = plural(cfg["threads"], "thread") if cfg["threads"] else "torch's threads"
    models = plural(len(run.members), "model")
    resuming = ""
    if cfg["resume"] is not None:
        done = run.checkpoint["epoch"] if run.checkpoint else 0  # none recorded: from the start
        resuming = f"\nresuming {run.folder} from epoch {done} of {cfg['epochs']}"
    elif Path(run.folder) != Path(cfg["out"]):
        resuming = f"\n({cfg['out']} holds an earlier run, which is kept; --overwrite replaces it)"
    return (
        f"lab5 {cfg['variant']}: {models} in one vmapped step, {how}, {run.device} ({threads}), "
        f"{run.steps} steps per epoch\n"
        f"{settings.own_defaults_line(cfg['variant'])}\n"
        f"data: {len(run.train)} train / {len(run.test)} test points from {short(run.source)}\n"
        f"run folder: {Path(run.folder).resolve()}/{resuming}"
    )


def compile_message(run: Run) -> str:
    if run.cfg["no_compile"]:
        return "running the step eagerly (--no-compile): slower, and no compile to wait for"
    if run.uncompiled_because:
        return f"running the step uncompiled ({run.uncompiled_because})"
    what = "step (a CUDA graph)" if run.device.type == "cuda" else "epoch (one scan of the step)"
    return f"compiling the training {what}: about 20-30 s the first time, 5 s once it is cached"


def print_end(summary: dict, folder, variant: str) -> None:
    """The end message: on stdout for a completed run, else on stderr."""
    out = sys.stdout if summary["status"] == "completed" else sys.stderr
    print(end_message(summary, folder, variant), flush=True, file=out)


def end_message(summary: dict, folder, variant: str) -> str:
    """What a run did: its times when it completed; otherwise what its folder keeps. The
    folder's full path on a line of its own (a path is as long as it is)."""
    done = summary["epochs_done"]
    status = summary["status"]
    where = f"\nrun folder: {Path(folder).resolve()}/"
    if status == "completed":
        return (
            f"done in {summary['wall_s']:.1f} s (compiling {summary['warm_up_s']:.1f} s, "
            f"training {summary['train_s']:.1f} s; recording {summary['record_s']:.1f} s "
            f"beside it){where}"
        )
    which = f" ({', '.join(summary['diverged_members'])})" if status == "diverged" else ""
    stopped_by = summary.get("stopped_by")
    by = f" by {stopped_by}" if stopped_by not in (None, "SIGINT") else ""  # Ctrl-C goes unsaid
    kept = (
        f"{status}{by}{which} in epoch {done + 1}: the run folder keeps epochs 0-{done} "
        "(metrics, frames, parameters, checkpoint)"
    )
    if status != "interrupted":
        return kept + where
    return f"{kept}; to go on: {resume_command(variant, folder)}{where}"


def resume_command(variant: str, folder) -> str:
    return f"python variants/{variant}.py --resume {short(folder)}"


def unwritable_line(error, variant: str) -> str:
    """A run folder that could not be written, in one line: which file and why, what is intact,
    and how to go on."""
    if error.epoch is None:
        kept = "no checkpoint was written: once it can be, run it again"
    else:
        kept = f"the checkpoint of epoch {error.epoch} is intact: once the file can be written, "
        kept += resume_command(variant, error.folder)
    return f"cannot write {short(error.file)} ({error.reason}); {kept}"
