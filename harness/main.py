"""A run, from its command line to its folder: flags -> data -> the recorder beside -> lab5's
loop -> the summary and the exit status. The variant scripts are main(variant)."""

from __future__ import annotations

import platform
import signal
import sys
import time
from typing import Callable

import numpy as np
import torch
from torch.func import vmap

import lab5
from data.points import (
    TOY_DATA,
    data_format,
    file_sha256,
    find_data,
    load_points,
    split_points,
    toy_points,
)
from errors import UserError
from harness import console, endings, hardware, recorder, run_folder, settings
from harness.ensemble import member_configs, member_name, scheduled
from harness.evaluation import NEIGHBOURS
from harness.flags import TITLES, parse_config
from harness.run import Run
from harness.run_folder import FolderUnwritable
from plots.frames import plot_window

# a bug exits 1; an interrupted run 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)
EXIT_CODES = {"completed": 0, "usage": 2, "diverged": 3, "unwritable": 4}


def load_data(cfg: dict) -> tuple[np.ndarray, dict | None, str]:
    """The points, the mixture's modes when the data is a built-in mixture, and a name."""
    if cfg["data"] in TOY_DATA:
        modes = TOY_DATA[cfg["data"]]
        modes = modes and {"means": np.array(modes["means"], float), "std": modes["std"]}
        points = toy_points(cfg["data"], lab5.make_rng(cfg["data_seed"], "toy"), cfg["toy_size"])
        return points, modes, cfg["data"]
    points, source = load_points(cfg["data"], cfg["key"], cfg["delimiter"])
    return points, None, source


def split_data(cfg: dict, points: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The seeded shuffle's training and test points."""
    rng = lab5.make_rng(cfg["data_seed"], "split")
    batch = (cfg["batch_size"], cfg["n_critic"])
    fewest = NEIGHBOURS + 1  # the precision and recall need a k-th nearest neighbour
    return split_points(points, cfg["train_size"], cfg["test_size"], rng, source, fewest, batch)


def run_setting(run: Run) -> dict:
    """What config.json adds to the flags: the data file, its format and sha256, the split's
    sizes in points, the device and the library versions."""
    data = None if run.cfg["data"] in TOY_DATA else find_data(run.cfg["data"])
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    return {
        "data": str(data or run.cfg["data"]),
        "steps_per_epoch": run.steps,
        "train_points": len(run.train),
        "test_points": len(run.test),
        "data_format": data and data_format(data),
        "data_sha256": data and file_sha256(data),
        "device": str(run.device),
        "versions": versions,
    }


def write_configs(run: Run) -> None:
    """config.json, one shape for every member and the ensemble: every flag, the setting, the
    members, the flags that differ from the variant's defaults and those its preset set."""
    setting = run_setting(run)
    configs = list(zip(run.member_dirs, run.members, [[name] for name in run.names]))
    if run.folder not in run.member_dirs:  # an ensemble's own folder
        configs.insert(0, (run.folder, run.cfg, run.names))
    folders = {
        folder: {
            **cfg,
            **setting,
            "members": names,
            "out": str(folder),
            "changed": settings.changed_flags(cfg),
            "set_by_preset": settings.set_by_preset(cfg),
            "title": TITLES[cfg["variant"]],
            "own_defaults": settings.own_defaults(cfg["variant"]),
        }
        for folder, cfg, names in configs
    }
    kept = run.checkpoint["epoch"] if run.checkpoint else None
    run_folder.write_configs(folders, run.folder, kept)


def uncompiled_because(cfg: dict, placement: hardware.Placement) -> str | None:
    if cfg["no_compile"]:
        return "--no-compile"
    return None if placement.compiles else placement.note


def prepare_run(cfg: dict) -> Run:
    """Everything both processes need to know of a run, worked out once."""
    if cfg["out"] is None:  # no --out: a folder named by the variant and the flags given
        cfg = {**cfg, "out": settings.folder_name(cfg)}
    placement = hardware.place(cfg["device"], hardware.gpu_facts(), not cfg["no_compile"])
    if placement.note:  # a GPU not used, or not compiled for
        print(f"note: {placement.note}", flush=True)
    points, modes, source = load_data(cfg)
    train_points, test = split_data(cfg, points, source)
    steps = len(train_points) // (cfg["batch_size"] * cfg["n_critic"])
    members = member_configs({**cfg, "steps_per_epoch": steps})  # for --ema-start
    names = [member_name(m, cfg) for m in members]
    folder, member_dirs, checkpoint = run_folder.open_run_dirs(cfg, names)
    n_eval = max(len(test), cfg["eval_size"])  # the fixed noise each member is scored on
    eval_z = [lab5.draw_latent(m, (n_eval,), lab5.make_rng(m["seed"], "eval")) for m in members]
    run = Run(
        cfg=cfg,
        members=members,
        names=names,
        device=torch.device(placement.device),
        uncompiled_because=uncompiled_because(cfg, placement),
        source=source,
        train=train_points,
        test=test,
        modes=modes,
        steps=steps,
        folder=folder,
        member_dirs=member_dirs,
        checkpoint=checkpoint,
        started=time.time(),
        eval_z=eval_z,
        floor_seed=lab5.make_rng(cfg["data_seed"], "floor").initial_seed(),
        window=plot_window(np.vstack([train_points, test])),
    )
    write_configs(run)
    return run


def as_message(event: dict) -> dict:
    """An epoch as the recorder takes it: its arrays as NumPy copies (pickled by value)."""
    arrays = {k: event[k] for k in ("state", "losses", "rngs")}
    return {**event, **lab5.tree_map(lambda t: t.detach().cpu().numpy().copy(), arrays)}


def compiled_or_eager(run: Run, step: Callable, state: dict) -> tuple[Callable, dict]:
    """The epoch compiled (warmed_up)."""
    return warmed_up(run, lab5.compile_epoch(step, run.device), step, state)


def fast_calls(compiled: Callable) -> Callable:
    """A warmed-up compiled step's or epoch's inputs never change shape, dtype or structure
    (the tests hold whole runs to one graph, guards checked): its guards go unchecked."""

    def call(state, batch):
        with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
            return compiled(state, batch)

    return call


def warmed_up(run: Run, compiled: Callable, step: Callable, state: dict) -> tuple[Callable, dict]:
    """The compiled epoch after its first call, the compile, timed apart on an epoch of
    throw-away noise; where compiling fails (no C++ compiler, no Triton for the GPU, an inductor
    error), the uncompiled epoch (lab5.stepwise), and why: it computes the same numbers."""
    started = time.perf_counter()
    points = torch.as_tensor(run.train, dtype=torch.float32)
    noise = [torch.Generator().manual_seed(0) for _ in run.members]
    batches = lab5.members_batches(points, run.members, run.steps, noise, run.device)
    try:
        compiled(state, batches)
    except Exception as e:  # noqa: BLE001 - whatever failed, training goes on uncompiled
        torch._dynamo.reset()
        reason = f"{type(e).__name__}: {str(e).strip()}".strip(": ").splitlines()[0]
        return lab5.stepwise(step), {"warm_up_s": 0.0, "compile_failed": reason}
    return fast_calls(compiled), {"warm_up_s": time.perf_counter() - started}


def starting_point(run: Run) -> tuple[dict, dict]:
    """Where training starts (epoch 0, or the checkpoint's epoch again: lab5.start_point) and
    the message that tells the recorder so."""
    state, rngs, done = lab5.start_point(run.members, run.device, run.checkpoint)
    start = {"epoch": done, "state": state, "rngs": torch.stack([r.get_state() for r in rngs])}
    if run.checkpoint:
        return start, {**run.checkpoint, "resumed": True}
    return start, as_message({**start, "seconds": 0.0, "losses": {}})


def train_epochs(run: Run, send: Callable) -> None:
    """Where training starts, the compile, then each epoch of lab5's loop, each sent on to the
    recorder."""
    start, first = starting_point(run)
    send(first)
    step = vmap(lab5.make_train_step(run.cfg))
    one_epoch = lab5.stepwise(step)
    if run.uncompiled_because is None:
        one_epoch, compiled = compiled_or_eager(run, step, start["state"])
        send(compiled)
    for epoch in lab5.train(run.members, run.train, run.device, start, one_epoch, scheduled):
        send(as_message(epoch))


def train(cfg: dict, start_recorder: Callable = recorder.start_in_worker) -> dict:
    """Train the model, or the ensemble, that cfg describes and write the run folder; returns
    its summary. An interrupted or diverged run keeps everything up to its last good epoch; a
    folder that cannot be written raises FolderUnwritable, with what it keeps."""
    run = prepare_run(cfg)
    print(console.start_message(run), flush=True)
    writer = start_recorder(run)
    progress = console.progress(run)  # a bar once training starts, after compiling
    end = {"status": "failed"}  # stays only if a bug stops the run

    def send(message: dict) -> None:
        with endings.interrupts_held():
            progress.show(writer.send(message), message)

    try:
        torch.set_num_threads(cfg["threads"] or torch.get_num_threads())
        print(console.compile_message(run), flush=True)
        train_epochs(run, send)
        end = {"status": "completed"}
    except lab5.Diverged as e:
        end = {"status": "diverged", "diverged_members": [run.names[i] for i in e.args[0]]}
    except KeyboardInterrupt as e:
        end = {"status": "interrupted", "stopped_by": signal.Signals(endings.signal_number(e)).name}
    finally:
        progress.close()
        with run_folder.unlocked_after(run.folder), endings.interrupts_held():
            for line in writer.finish(end):
                console.say(None, line)
    summary = run_folder.read_summary(run.folder)
    if end["status"] != "failed":
        console.print_end(summary, run.folder, cfg["variant"])
    return summary


def exit_code(summary: dict) -> int:
    if summary["status"] == "interrupted":
        return 128 + signal.Signals[summary["stopped_by"] or "SIGINT"]
    return EXIT_CODES[summary["status"]]


def main(variant: str, argv: list[str] | None = None) -> int:
    """Entry point of the variant scripts; returns the exit status (EXIT_CODES)."""
    endings.end_with_driver()
    try:
        with endings.signals_stop_the_run():
            summary = train(parse_config(variant, argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CODES["usage"]
    except FolderUnwritable as e:
        print(f"error: {console.unwritable_line(e, variant)}", file=sys.stderr)
        return EXIT_CODES["unwritable"]
    except (
        KeyboardInterrupt
    ) as e:  # before the first epoch: the run folder holds at most its config
        print("interrupted", file=sys.stderr)
        return 128 + endings.signal_number(e)
    return exit_code(summary)
