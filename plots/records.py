"""The files of a run folder, and the process that writes them.

Files are written whole through a temporary file (an interrupt or a crash never leaves half of
one) or a row at a time, and read back as rows. The writing runs in a worker process beside
the one that trains, fed through a bounded queue.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import platform
import queue
import shutil
import signal
import sys
import threading
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from data.points import TOY_DATA, UserError, data_format, file_sha256, find_data


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file beside `path`, then rename it over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_params(path: Path, params: dict) -> None:
    """torch.save a dict that nn.Sequential.load_state_dict accepts."""
    tensors = {k: torch.as_tensor(v).detach().cpu().clone() for k, v in params.items()}
    atomic_write(path, lambda tmp: torch.save(tensors, tmp))


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def open_table(path: Path, columns: list[str], append: bool = False):
    """A CSV file and its writer (appending to the rows already there, or starting anew); every
    row is on disk as soon as it is written (a missing value, None, is an empty cell)."""
    file = open(path, "a" if append else "w", newline="", buffering=1)
    writer = csv.DictWriter(file, fieldnames=columns)
    if not append:
        writer.writeheader()
    return file, writer


def open_metrics(folder: Path, columns: list[str], resumed: bool) -> dict:
    """A member's metrics table, and the W1 history (epoch, W1) of the rows it already has."""
    rows = read_table(folder / "metrics.csv") if resumed else []
    return {"table": open_table(folder / "metrics.csv", columns, resumed),
            "history": [(int(r["epoch"]), r["w1"]) for r in rows if r["w1"] is not None]}


def read_table(path: Path) -> list[dict]:
    """A table's rows as numbers (None for an empty cell)."""
    with open(path, newline="") as f:
        return [{k: float(v) if v else None for k, v in row.items()} for row in csv.DictReader(f)]


RUN_FILES = ("config.json", "metrics.csv", "summary.json", "ensemble.csv", "generator.pt",
             "generator_raw.pt", "critic.pt", "curves.png", "checkpoint.pt")


def read_config(folder: Path) -> dict:
    """The config.json of the run in `folder`; none, or not a run's, is a one-line error."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise UserError(f"{folder} holds no lab5 run (no config.json)") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{folder}/config.json is unreadable ({e})") from None
    if not isinstance(cfg, dict) or "variant" not in cfg:
        raise UserError(f"{folder}/config.json is not a lab5 run's config")
    return cfg


def resumed_config(variant: str, given: dict, resumable: tuple, flags) -> dict:
    """The `flags` of the run in --resume DIR, changed where `given` (the flags set) may change
    them: only the `resumable` ones, which change no number of the training."""
    folder = Path(given["resume"])
    saved, dashed = read_config(folder), lambda name: "--" + name.replace("_", "-")
    if saved["variant"] != variant:
        raise UserError(f"--resume {folder} is a {saved['variant']} run: resume it with "
                        f"python variants/{saved['variant']}.py")
    for name, value in given.items():
        if name not in resumable and json.loads(json.dumps(value)) != saved.get(name):
            raise UserError(f"{dashed(name)} {value} would change the training of {folder}, "
                            f"trained with {saved.get(name)}; --resume can change only "
                            f"{', '.join(map(dashed, resumable[:-1]))}")
    if saved["data_sha256"] and file_sha256(find_data(saved["data"])) != saved["data_sha256"]:
        raise UserError(f"{saved['data']} has changed since {folder} was trained (sha256)")
    return {k: v for k, v in {**saved, **given, "out": str(folder)}.items() if k in flags}


# Where a run is written and run, not how it trains (config.json's "device" is the one used)
PLACE_FLAGS = ("out", "overwrite", "resume", "device")


def changed_flags(cfg: dict, defaults: dict) -> dict:
    """The flags whose values differ from the variant's defaults (as JSON has them: a tuple is
    a list), but for where the run went."""
    plain = lambda value: json.loads(json.dumps(value))  # noqa: E731
    return {k: v for k, v in cfg.items() if k in defaults and k not in PLACE_FLAGS
            and plain(v) != plain(defaults[k])}


def write_configs(run: dict) -> None:
    """config.json, one shape for every member (and the ensemble): every flag, the data file,
    its format and sha256, the split's sizes in points, the device, the library versions."""
    cfg = run["cfg"]
    data = None if cfg["data"] in TOY_DATA else find_data(cfg["data"])
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "numpy": np.__version__}
    setting = {"data": str(data or cfg["data"]), "steps_per_epoch": run["steps"],
               "train_points": len(run["train"]), "test_points": len(run["test"]),
               "data_format": data and data_format(data),
               "data_sha256": data and file_sha256(data), "device": str(run["device"]),
               "versions": versions}
    folders = [(run["folder"], cfg, run["names"])] * (run["folder"] not in run["member_dirs"])
    for folder, member, names in folders + list(zip(run["member_dirs"], run["members"],
                                                    [[name] for name in run["names"]])):
        write_json(folder / "config.json",
                   {**member, **setting, "members": names, "out": str(folder),
                    "changed": changed_flags(member, run["defaults"])})


def is_run_dir(path: Path) -> bool:
    """Does this folder hold a lab5 run (a config.json that names a variant)?"""
    try:
        return bool(read_config(path))
    except UserError:
        return False


def is_taken(path: Path) -> bool:
    """Does anything but an empty frames folder stand at this path?"""
    empty = lambda p: p.name == "frames" and p.is_dir() and not any(p.iterdir())  # noqa: E731
    return path.exists() and (not path.is_dir() or any(not empty(p) for p in path.iterdir()))


def new_run_dir(out: str | Path, overwrite: bool = False) -> Path:
    """The folder for a new run: OUT if nothing is there, else (an earlier run is never lost)
    the first free one of OUT2, OUT3, ...; with overwrite, OUT cleared of the lab5 run it holds
    (its files, frames and member folders, nothing else). Anything but a run is never cleared."""
    if not str(out).strip():
        raise UserError("--out is empty; give the folder for the run")
    run, number = Path(out), 2
    while is_taken(run) and not overwrite:
        run, number = Path(f"{out}{number}"), number + 1
    if run.exists() and not run.is_dir():
        raise UserError(f"--out {run} is a file; give a folder for the run")
    if is_taken(run) and not is_run_dir(run):
        raise UserError(f"--out {run} holds files that are not a lab5 run; --overwrite deletes "
                        "only a lab5 run: give a new or empty folder")
    try:
        (run / "frames").mkdir(parents=True, exist_ok=True)
        for old in [*run.glob("frames/epoch_*.png"), *(run / name for name in RUN_FILES)]:
            old.unlink(missing_ok=True)
        for member in [d for d in run.iterdir() if d.is_dir() and is_run_dir(d)]:
            shutil.rmtree(member)
    except OSError as e:
        raise UserError(f"cannot write the run folder {run}: {e.strerror}") from None
    return run


def rewind(folders: list[Path], epoch: int) -> None:
    """Take run folders back to the end of `epoch - 1`, ready to record `epoch` again: the tables
    keep the complete rows of earlier epochs (a killed run can leave half a row), the frames of
    later ones go, and so does what a kill left half-written."""
    for folder in folders:
        for table in [folder / "metrics.csv", folder / "ensemble.csv"]:
            if table.exists():
                lines = table.read_bytes().splitlines(keepends=True)
                kept = [line for line in lines[1:]
                        if line.endswith(b"\n") and float(line.split(b",", 1)[0]) < epoch]
                rows = b"".join(lines[:1] + kept)
                atomic_write(table, lambda tmp, rows=rows: tmp.write_bytes(rows))
        for old in [*folder.glob("*.tmp"), *folder.glob("frames/*.tmp"),
                    *[f for f in folder.glob("frames/epoch_*.png") if int(f.stem[6:]) >= epoch]]:
            old.unlink()


CHECKPOINT_ARRAYS = ("state", "losses", "rngs")  # (nested dicts of) arrays; the rest plain


def map_arrays(f: Callable, snapshot: dict) -> dict:
    """f over the leaves of a snapshot's CHECKPOINT_ARRAYS; its other entries as they are."""
    def leaves(tree):
        return {k: leaves(v) for k, v in tree.items()} if isinstance(tree, dict) else f(tree)
    return {k: leaves(v) if k in CHECKPOINT_ARRAYS else v for k, v in snapshot.items()}


def save_checkpoint(folder: Path, snapshot: dict) -> None:
    """checkpoint.pt: an epoch's snapshot of all that training needs to go on from it — the
    stacked state (both networks, both optimisers), every member's random stream, the epoch and
    its losses — as tensors, so that torch.load reads it without lab5."""
    kept = {k: snapshot[k] for k in ("epoch", "seconds", *CHECKPOINT_ARRAYS)}
    saved = map_arrays(torch.from_numpy, kept)
    atomic_write(folder / "checkpoint.pt", lambda tmp: torch.save(saved, tmp))


def load_checkpoint(folder: Path, members: int) -> dict:
    """A checkpoint as the snapshot it was made from; a missing or unreadable one (a torn or
    foreign file fails in many ways) is a one-line error, and touches nothing."""
    path = folder / "checkpoint.pt"
    if not path.exists():
        raise UserError(f"{path} is missing: the run cannot be resumed")
    try:
        saved = map_arrays(lambda t: t.numpy(), torch.load(path, weights_only=True))
        if len(saved["rngs"]) != members or not isinstance(saved["epoch"], int):
            raise ValueError("not this run's")
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path} is unreadable ({type(e).__name__}: {e}): the run cannot be "
                        "resumed from it") from None
    return saved


def open_run_dirs(cfg: dict, names: list[str]) -> tuple[Path, list[Path], dict | None]:
    """The run's folder, its members' folders (the same one for a single model) and the
    checkpoint to go on from: a new folder and none, or --resume's folder taken back to its
    checkpoint. A resumed run that recorded no epoch yet starts again from the beginning."""
    if cfg["resume"] is None:
        folder = new_run_dir(cfg["out"], cfg["overwrite"])
        return folder, [folder] if len(names) == 1 else \
            [new_run_dir(folder / name, True) for name in names], None
    folder = Path(cfg["resume"])
    dirs = [folder] if len(names) == 1 else [folder / name for name in names]
    summary = json.loads((folder / "summary.json").read_text()) \
        if (folder / "summary.json").exists() else {"epochs_done": 0, "status": "running"}
    checkpoint = load_checkpoint(folder, len(names)) if summary["epochs_done"] > 0 else None
    done = checkpoint["epoch"] if checkpoint else 0
    if done > cfg["epochs"] or done == cfg["epochs"] and summary["status"] == "completed":
        raise UserError(f"{folder} has trained {done} epochs; --epochs N > {done} extends it")
    rewind(list(dict.fromkeys([folder, *dirs])), done)
    return folder, dirs, checkpoint


def receive(inbox):
    """A worker's next message; if the process that sends them is gone (killed), the worker
    ends rather than wait for ever, and writes nothing more."""
    while True:
        with suppress(queue.Empty):
            return inbox.get(timeout=1)
        if not multiprocessing.parent_process().is_alive():
            raise SystemExit("the training process is gone")


def serve(start: Callable[[], dict], handle: Callable[[dict, dict], list], inbox,
          outbox) -> None:
    """A worker's loop: the state that start() makes, then each message handled, with the
    replies sent back, up to and including the last one (which has a "status")."""
    torch.set_num_threads(1)  # the other core trains
    state = start()
    while "status" not in (message := receive(inbox)):
        outbox.put(handle(state, message))
    outbox.put(handle(state, message))


class Worker(NamedTuple):
    send: Callable[[dict], list]  # a message in; the replies that are ready so far out
    finish: Callable[[dict], list]  # the last message; returns once the worker has ended


class WorkerStopped(RuntimeError):
    """The worker process died (a bug, or a full disk); its own error is printed above."""


@contextmanager
def interrupts_held():
    """A Ctrl-C while an epoch is handed over takes effect once it is, so that the files of a
    run folder always come from the same epoch."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


@contextmanager
def interrupts_ignored():
    """Ctrl-C ignored while a worker starts, which inherits that (and so ignores it too)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


QUEUE_SIZE = 8  # messages waiting for the worker before the sender waits for it


def start_worker(work: Callable) -> Worker:
    """Run work(inbox, outbox) in a process of its own, forked where the platform can (so that
    it starts at once, with everything imported), fed through a bounded queue: a slow worker
    holds the sender back rather than letting messages pile up. It starts with Ctrl-C ignored:
    an interrupt is the sender's to handle, and the worker finishes what it was given."""
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    inbox, outbox = context.Queue(QUEUE_SIZE), context.Queue()
    worker = context.Process(target=work, args=(inbox, outbox))
    with interrupts_ignored():
        worker.start()

    def send(message: dict) -> list[str]:
        while not put(message):
            if not worker.is_alive():
                inbox.cancel_join_thread()  # nobody will read what is still buffered
                raise WorkerStopped(f"exit code {worker.exitcode}")
        lines = []
        while not outbox.empty():
            lines += outbox.get()
        return lines

    def put(message: dict) -> bool:
        try:
            inbox.put(message, timeout=0.5)
            return True
        except queue.Full:
            return False

    def finish(message: dict) -> list[str]:
        lines = send(message) if worker.is_alive() else []
        while worker.is_alive() or not outbox.empty():
            with suppress(queue.Empty):
                lines += outbox.get(timeout=0.2)
        worker.join()
        if worker.exitcode:
            raise WorkerStopped(f"exit code {worker.exitcode}")
        return lines
    return Worker(send, finish)
