"""The recording process: a worker beside the one that trains, fed through a bounded queue, and
the handling of Ctrl-C that keeps a run folder's files on one epoch."""

from __future__ import annotations

import multiprocessing
import queue
import signal
import sys
import threading
from contextlib import contextmanager, suppress
from typing import Callable, NamedTuple

import torch

QUEUE_SIZE = 8  # messages waiting for the worker before the sender waits for it


def receive(inbox):
    """A worker's next message; if the process that sends them is gone (killed), the worker
    ends rather than wait for ever, and writes nothing more."""
    while True:
        with suppress(queue.Empty):
            return inbox.get(timeout=1)
        if not multiprocessing.parent_process().is_alive():
            raise SystemExit("the training process is gone")


def serve(start: Callable[[], object], handle: Callable, inbox, outbox) -> None:
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


def start_worker(work: Callable) -> Worker:
    """Run work(inbox, outbox) in a process of its own, forked where the platform can (so that
    it starts at once, with everything imported), fed through a bounded queue: a slow worker
    holds the sender back rather than letting messages pile up. It starts with Ctrl-C ignored:
    an interrupt is the sender's to handle, and the worker finishes what it was given."""
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    inbox = context.Queue(QUEUE_SIZE)
    outbox = context.Queue()
    worker = context.Process(target=work, args=(inbox, outbox))
    with interrupts_ignored():
        worker.start()

    def put(message: dict) -> bool:
        try:
            inbox.put(message, timeout=0.5)
            return True
        except queue.Full:
            return False

    def send(message: dict) -> list[str]:
        while not put(message):
            if not worker.is_alive():
                inbox.cancel_join_thread()  # nobody will read what is still buffered
                raise WorkerStopped(f"exit code {worker.exitcode}")
        lines = []
        while not outbox.empty():
            lines += outbox.get()
        return lines

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
