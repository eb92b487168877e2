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
import queue
import shutil
import signal
import sys
import threading
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, NamedTuple

from data.points import UserError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file beside `path`, then rename it over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def open_table(path: Path, columns: list[str]):
    """A CSV file and its writer; every row is on disk as soon as it is written (a missing
    value, None, is an empty cell)."""
    file = open(path, "w", newline="", buffering=1)
    writer = csv.DictWriter(file, fieldnames=columns)
    writer.writeheader()
    return file, writer


def read_table(path: Path) -> list[dict]:
    """A table's rows as numbers (None for an empty cell)."""
    with open(path, newline="") as f:
        return [{k: float(v) if v else None for k, v in row.items()} for row in csv.DictReader(f)]


RUN_FILES = ("config.json", "metrics.csv", "summary.json", "ensemble.csv", "generator.pt",
             "critic.pt", "curves.png")


def is_run_dir(path: Path) -> bool:
    """Does this folder hold a lab5 run (a config.json that names a variant)?"""
    try:
        return "variant" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def prepare_run_dir(out: str | Path) -> Path:
    """Create the run folder, or clear one that an earlier lab5 run left (its files, frames and
    member folders, nothing else), so that old frames do not end up in a new GIF. A folder that
    holds anything but a lab5 run is refused rather than written into."""
    if not str(out).strip():
        raise UserError("--out is empty; give the folder for the run")
    run = Path(out)
    if run.exists() and not run.is_dir():
        raise UserError(f"--out {run} is a file; give a folder for the run")
    empty = lambda p: p.name == "frames" and p.is_dir() and not any(p.iterdir())  # noqa: E731
    if run.exists() and any(not empty(p) for p in run.iterdir()) and not is_run_dir(run):
        raise UserError(f"--out {run} holds files that are not a lab5 run; give a new or empty "
                        "folder")
    try:
        (run / "frames").mkdir(parents=True, exist_ok=True)
        for old in [*run.glob("frames/epoch_*.png"), *(run / name for name in RUN_FILES)]:
            old.unlink(missing_ok=True)
        for member in [d for d in run.iterdir() if d.is_dir() and is_run_dir(d)]:
            shutil.rmtree(member)
    except OSError as e:
        raise UserError(f"cannot write the run folder {run}: {e.strerror}") from None
    return run


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
