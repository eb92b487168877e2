"""lab5 runs as processes of their own, for the sweeps and the report: each in a process group
of its own (a terminal's Ctrl-C reaches the driver, which stops its runs itself), stopped the
way SIGTERM stops a run (so that its folder stays whole and resumable), ended with the process
that started it (its input is a pipe from that process: harness/endings.py), and read while
it trains.

The same on Linux, macOS and Windows but for two calls, each behind one function here: a run
is stopped by SIGTERM, or on Windows by Ctrl-Break to its process group (stop_signal); its
CPU time is the exact one wait4 gives on Linux and macOS, and on Windows the last of psutil's
readings of the run and its recorder while it trained (ended).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.extras import psutil
from harness import run_folder
from harness.endings import DRIVEN

ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE_S = 120.0  # a run writing its last epoch under load may take a while
LAST = 5  # the scored epochs a run's objective averages: one score is noisy


@dataclass
class Process:
    popen: subprocess.Popen  # the run's main process, the leader of its process group
    folder: Path  # its run folder
    log: Path  # where its console output goes
    started: float  # time.monotonic() at its start
    since: float  # time.time() at its start: files older than this are an earlier run's
    exit_code: int | None = None  # once it has ended
    cpu_s: float = 0.0  # CPU seconds of it and of its recorder (exact once it has ended)


def command(variant: str, flags: list[str], folder: Path, resume: bool) -> list[str]:
    """The variant script training `flags` into `folder`, or going on with the run there."""
    where = ["--resume", str(folder)] if resume else [*flags, "--out", str(folder), "--overwrite"]
    return [sys.executable, str(ROOT / "variants" / f"{variant}.py"), *where]


def own_group() -> dict:
    """Popen's options for a process group of the run's own (a session on POSIX): the terminal's
    Ctrl-C goes to the driver alone, and on Windows Ctrl-Break can be sent to the run's group."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def stop_signal() -> int:
    """What stops a run as Ctrl-C would: SIGTERM, or on Windows (where SIGTERM kills at once)
    Ctrl-Break, which lab5 handles as SIGTERM."""
    return getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM)


def start(argv: list[str], folder: Path, log: Path, env: dict | None = None) -> Process:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,  # held open while this process lives: harness/endings.py
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), DRIVEN: "1"},
            **own_group(),
        )
    return Process(popen, folder, log, time.monotonic(), time.time())


def tree(pid: int) -> list[psutil.Process]:
    """A process and every process under it, as far as they are still there."""
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds so far of a process and its children, or None once it is gone."""
    try:
        times = [p.cpu_times() for p in tree(pid)]
    except psutil.Error:
        return None
    return sum(t.user + t.system for t in times) if times else None


def ended(process: Process) -> bool:
    """Has the run ended? Reaps it (and lets go of its input, see start); where wait4 exists,
    with its exact CPU time and its recorder's, else with the last reading of them."""
    if process.exit_code is not None:
        return True
    if hasattr(os, "wait4"):
        pid, status, usage = os.wait4(process.popen.pid, os.WNOHANG)
        if pid == 0:
            return False
        process.exit_code = os.waitstatus_to_exitcode(status)
        process.popen.returncode = process.exit_code  # reaped here: Popen must not wait for it
        process.cpu_s = usage.ru_utime + usage.ru_stime
    else:  # Windows
        process.cpu_s = tree_cpu_s(process.popen.pid) or process.cpu_s
        process.exit_code = process.popen.poll()
        if process.exit_code is None:
            return False
    process.popen.stdin.close()
    return True


def interrupt(process: Process) -> None:
    """Stop the run as Ctrl-C would: it records its epoch and keeps its checkpoint."""
    if not ended(process):
        process.popen.send_signal(stop_signal())


def kill_tree(pid: int) -> None:
    """Kill a process and every process under it."""
    for each in tree(pid):
        try:
            each.kill()
        except psutil.NoSuchProcess:
            pass


def wait_or_kill(process: Process, grace_s: float = STOP_GRACE_S) -> None:
    """Wait for an interrupted run to end; kill it if it has not within grace_s."""
    deadline = time.monotonic() + grace_s
    killed = False
    while not ended(process):
        if not killed and time.monotonic() > deadline:
            kill_tree(process.popen.pid)
            killed = True
        time.sleep(0.1)


def stop(process: Process) -> None:
    interrupt(process)
    wait_or_kill(process)


def last_scores(by_epoch: dict[int, float]) -> list[float]:
    """The scores of a run's last LAST scored epochs, trained ones only: epoch 0's, before any
    training, would weigh the start of a short run into its result."""
    return [by_epoch[e] for e in sorted(e for e in by_epoch if e > 0)[-LAST:]]


def objective(folder: Path) -> float:
    """What a sweep minimises, and its table ranks by: the mean over the run's members and its
    last LAST scored epochs (trained ones) of W1 / noise floor."""
    return float(np.mean(last_scores(run_folder.ensemble_ratios(folder))))


def log_path(folder: Path) -> Path:
    """Where a run's console output goes: beside its folder, which --overwrite empties."""
    return folder.with_name(folder.name + ".log")
