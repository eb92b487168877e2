"""How a run is told to stop, and stops cleanly: Ctrl-C, SIGTERM (kill, a scheduler's time
limit, a container that stops), Ctrl-Break on Windows, or the sweep that drives it gone.

Each of them ends a run the way Ctrl-C does: the epoch in flight is dropped, the folder keeps
the last recorded one (checkpoint and summary), and the run exits 128 + the signal's number
(130 for Ctrl-C, 143 for SIGTERM). While an epoch is handed to the recorder they wait until it
is, so that the files of a run folder always come from the same epoch.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager, suppress

# Ctrl-C's first: the others are given Stopped's handler (signals_stop_the_run)
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)
DRIVEN = "LAB5_DRIVEN"  # set by experiments/processes.py: the run ends when its driver does


class Stopped(KeyboardInterrupt):
    """A signal other than Ctrl-C's stopped the run; args[0] is its number."""


def stop_by_signal(signum: int, _frame) -> None:
    raise Stopped(signum)


def signal_number(interrupt: KeyboardInterrupt) -> int:
    """The signal that raised this interrupt: Stopped's own, else Ctrl-C's."""
    return interrupt.args[0] if isinstance(interrupt, Stopped) else int(signal.SIGINT)


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def set_handlers(handler, signals: tuple = STOP_SIGNALS) -> dict:
    """The signals to `handler` (in the main thread: only it may set them); returns the handlers
    they had."""
    if not in_main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in signals}


def restore(handlers: dict) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


@contextmanager
def signals_stop_the_run():
    """SIGTERM and Ctrl-Break raise Stopped, as Ctrl-C raises KeyboardInterrupt; Ctrl-C keeps the
    handler it has (a background job ignores it)."""
    previous = set_handlers(stop_by_signal, STOP_SIGNALS[1:])
    try:
        yield
    finally:
        restore(previous)


@contextmanager
def interrupts_held():
    """A stop signal in the block takes effect when the block is done, not in it."""
    caught = []
    previous = set_handlers(lambda signum, _: caught.append(signum))
    try:
        yield
    finally:
        restore(previous)
    if caught:  # delivered again, to the handler it would have met
        signal.raise_signal(caught[0])


def ignore_stop_signals() -> dict:
    """Stop signals ignored; returns the handlers they had."""
    return set_handlers(signal.SIG_IGN)


@contextmanager
def interrupts_ignored():
    """Stop signals ignored while a worker starts: it inherits that, and so ignores a Ctrl-C sent
    to the whole terminal before it can say so itself."""
    previous = ignore_stop_signals()
    try:
        yield
    finally:
        restore(previous)


def watch_input(fd: int) -> None:
    # os.read, not sys.stdin's: a thread waiting in a buffered reader would hold its lock and
    # stop the interpreter from shutting down
    with suppress(OSError):
        while os.read(fd, 4096):  # the driver sends nothing: this waits for the end
            pass
    signal.raise_signal(signal.SIGTERM)


def end_with_driver() -> None:
    """Where DRIVEN is set, this run's standard input is a pipe from the process that drives it
    (a sweep's driver), which sends nothing and holds the pipe's other end while it lives: the
    end of the input is the driver's end, however it died (killed, out of memory), and the run
    ends as by SIGTERM. Immediate, and the same on every OS (Linux's PR_SET_PDEATHSIG, which did
    this before, has no twin on macOS or Windows)."""
    if os.environ.get(DRIVEN) == "1" and sys.stdin is not None:
        fd = sys.stdin.fileno()
        threading.Thread(target=watch_input, args=(fd,), daemon=True, name="driver").start()
