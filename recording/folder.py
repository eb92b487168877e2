"""The run folder: a new one that never replaces another run, its config.json, and --resume's
folder taken back to the epoch of its checkpoint."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
from contextlib import contextmanager, suppress
from pathlib import Path

import filelock
import numpy as np
import torch

from config import changed_flags, read_config, set_by_preset
from data.points import TOY_DATA, data_format, file_sha256, find_data
from errors import UserError
from recording.checkpoint import load_checkpoint
from recording.files import FolderUnwritable, atomic_write, read_text, write_json
from recording.run import Run

RUN_FILES = (
    "config.json",
    "metrics.csv",
    "summary.json",
    "ensemble.csv",
    "generator.pt",
    "generator_raw.pt",
    "critic.pt",
    "curves.png",
    "checkpoint.pt",
    "sweep.json",  # written by a sweep that pruned the run (experiments/runner.py)
)
LOCK = ".lock"  # held (filelock) by the process that writes the folder
WRITER = ".writer"  # which process that is: "pid N on HOST"
HELD: dict[Path, filelock.BaseFileLock] = {}  # the locks of the folders this process writes


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
    try:
        for folder, cfg, names in configs:
            extra = {
                "members": names,
                "out": str(folder),
                "changed": changed_flags(cfg),
                "set_by_preset": set_by_preset(cfg),
            }
            write_json(folder / "config.json", {**cfg, **setting, **extra})
    except OSError as e:  # the run ends here: its folder is let go
        unlock_folder(run.folder)
        epoch = run.checkpoint["epoch"] if run.checkpoint else None
        raise FolderUnwritable(e.filename, e.strerror or str(e), epoch, run.folder) from None


def is_run_dir(path: Path) -> bool:
    """Does this folder hold a lab5 run (a config.json that names a variant)?"""
    try:
        return bool(read_config(path))
    except UserError:
        return False


def is_empty_frames(path: Path) -> bool:
    return path.name == "frames" and path.is_dir() and not any(path.iterdir())


def is_taken(path: Path) -> bool:
    """Does anything but an empty frames folder (or the lock file) stand at this path?"""
    if not path.exists():
        return False
    if not path.is_dir():
        return True
    return any(not is_empty_frames(p) and p.name not in (LOCK, WRITER) for p in path.iterdir())


def lock_folder(folder: Path) -> None:
    """Hold the run folder for this process until unlock_folder (or the process ends, however
    it ends): a second process that would write into it is refused with one line, rather than
    two runs interleaving their files. (filelock forgets the lock in a forked child: the lock
    goes with the process that took it, not with its recorder.)"""
    if not folder.is_dir():
        raise UserError(f"cannot lock the run folder {folder}: it is not a folder")
    lock = filelock.FileLock(folder / LOCK, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = read_text(folder / WRITER) or "another process"
        raise UserError(
            f"{folder} is being written by {holder}; wait for it to end, or write elsewhere"
        ) from None
    except OSError as e:  # no such folder, no permission, a file system without locks
        raise UserError(f"cannot lock the run folder {folder}: {e.strerror or e}") from None
    HELD[folder] = lock
    with suppress(OSError):  # only the refusal's message needs it
        (folder / WRITER).write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")


def unlock_folder(folder: Path) -> None:
    lock = HELD.pop(folder, None)
    if lock is not None:
        lock.release()


@contextmanager
def unlocked_after(folder: Path):
    """The folder's lock held to the end of the block (the run's last writes), then let go."""
    try:
        yield
    finally:
        unlock_folder(folder)


def free_folder(out: str | Path) -> Path:
    """OUT if nothing is there, else the first free one of OUT2, OUT3, ..."""
    run = Path(out)
    number = 2
    while is_taken(run):
        run = Path(f"{out}{number}")
        number += 1
    return run


def is_locked(folder: Path) -> bool:
    """Is a process writing the run folder now (holding its lock)?"""
    if not (folder / LOCK).exists():
        return False
    lock = filelock.FileLock(folder / LOCK, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return True
    lock.release()
    return False


def new_run_dir(out: str | Path, overwrite: bool = False) -> Path:
    """The folder for a new run: OUT if nothing is there, else (an earlier run is never lost)
    the first free one of OUT2, OUT3, ...; with overwrite, OUT itself. Anything but a run is
    never chosen."""
    if not str(out).strip():
        raise UserError("--out is empty; give the folder for the run")
    run = Path(out) if overwrite else free_folder(out)
    if run.exists() and not run.is_dir():
        raise UserError(f"--out {run} is a file; give a folder for the run")
    if is_taken(run) and not is_run_dir(run):
        raise UserError(
            f"--out {run} holds files that are not a lab5 run; --overwrite deletes only a lab5 "
            "run: give a new or empty folder"
        )
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FolderUnwritable(e.filename or run, e.strerror or str(e), None, run) from None
    return run


def clear_run_dir(run: Path) -> None:
    """Empty a run folder of the lab5 run it holds (its files, frames and member folders,
    nothing else)."""
    try:
        (run / "frames").mkdir(parents=True, exist_ok=True)
        for old in [*run.glob("frames/epoch_*.png"), *(run / name for name in RUN_FILES)]:
            old.unlink(missing_ok=True)
        for member in [d for d in run.iterdir() if d.is_dir() and is_run_dir(d)]:
            shutil.rmtree(member)
    except OSError as e:
        raise FolderUnwritable(e.filename or run, e.strerror or str(e), None, run) from None


def rewind_table(table: Path, epoch: int) -> None:
    """Keep the header and the complete rows of the epochs before `epoch` (a killed run can
    leave half a row)."""
    lines = table.read_bytes().splitlines(keepends=True)
    kept = [
        line for line in lines[1:] if line.endswith(b"\n") and float(line.split(b",", 1)[0]) < epoch
    ]
    rows = b"".join(lines[:1] + kept)
    atomic_write(table, lambda tmp: tmp.write_bytes(rows))


def rewind(folders: list[Path], epoch: int) -> None:
    """Take run folders back to the end of `epoch - 1`, ready to record `epoch` again: the tables
    keep the complete rows of earlier epochs, the frames of later ones go, and so does what a
    kill left half-written."""
    for folder in folders:
        for table in [folder / "metrics.csv", folder / "ensemble.csv"]:
            if table.exists():
                rewind_table(table, epoch)
        later = [f for f in folder.glob("frames/epoch_*.png") if int(f.stem[6:]) >= epoch]
        for old in [*folder.glob("*.tmp"), *folder.glob("frames/*.tmp"), *later]:
            old.unlink()


def new_member_dir(folder: Path) -> Path:
    member = new_run_dir(folder, overwrite=True)
    clear_run_dir(member)
    return member


def open_run_dirs(cfg: dict, names: list[str]) -> tuple[Path, list[Path], dict | None]:
    """The run's folder, locked for this process (lock_folder), its members' folders (the same
    one for a single model) and the checkpoint to go on from: a new folder and none, or
    --resume's folder taken back to its checkpoint; the lock let go if that fails."""
    if cfg["resume"] is None:
        folder = new_run_dir(cfg["out"], cfg["overwrite"])
    else:
        folder = Path(cfg["resume"])
    lock_folder(folder)  # before anything in it is deleted
    try:
        if cfg["resume"] is None:
            return new_run(folder, names)
        return resumed_run(folder, cfg, names)
    except BaseException:
        unlock_folder(folder)
        raise


def new_run(folder: Path, names: list[str]) -> tuple[Path, list[Path], None]:
    clear_run_dir(folder)
    if len(names) == 1:
        return folder, [folder], None
    return folder, [new_member_dir(folder / name) for name in names], None


def resumed_run(folder: Path, cfg: dict, names: list[str]) -> tuple[Path, list[Path], dict | None]:
    """--resume's folder taken back to its checkpoint; a resumed run that recorded no epoch
    yet starts again from the beginning."""
    dirs = [folder] if len(names) == 1 else [folder / name for name in names]
    summary = {"epochs_done": 0, "status": "running"}
    if (folder / "summary.json").exists():
        summary = json.loads((folder / "summary.json").read_text())
    checkpoint = load_checkpoint(folder, len(names)) if summary["epochs_done"] > 0 else None
    done = checkpoint["epoch"] if checkpoint else 0
    if done > cfg["epochs"] or done == cfg["epochs"] and summary["status"] == "completed":
        raise UserError(f"{folder} has trained {done} epochs; --epochs N > {done} extends it")
    (folder / "sweep.json").unlink(missing_ok=True)  # a pruned run goes on: no longer pruned
    rewind(list(dict.fromkeys([folder, *dirs])), done)
    return folder, dirs, checkpoint
