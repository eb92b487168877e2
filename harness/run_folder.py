"""A run folder, read and written: the one module that knows its files' names and formats.

    config.json      every flag, and what the run worked out (write_configs / read_config)
    summary.json     how far the run got, its noise floor and last metrics (write_summary)
    metrics.csv      a row per epoch (open_table, write_row / read_table, w1_ratios)
    ensemble.csv     an ensemble's means and standard errors over its members, per epoch
    checkpoint.pt    all that training needs to go on (save_checkpoint / load_checkpoint)
    generator.pt, generator_raw.pt, critic.pt   the networks' parameters (save_params)
    frames/epoch_NNNN.png, and .npz: what the frame shows, as arrays, to draw it again
    curves.png, sweep.json (a sweep pruned the run), .lock, .writer
    events.out.tfevents.*  TensorBoard's events, with --tensorboard (harness/board.py writes them)

An ensemble's folder holds a folder of the same shape per member. Every file is written through
a temporary file renamed over it (a crash never leaves half of one), a table a row at a time.
A file that cannot be written raises FolderUnwritable. plots/ reads run folders through this
module and must start without torch: only the torch files' functions import it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Callable, NamedTuple

import filelock
import numpy as np

from errors import UserError

CONFIG = "config.json"
SUMMARY = "summary.json"
METRICS = "metrics.csv"
ENSEMBLE = "ensemble.csv"
CHECKPOINT = "checkpoint.pt"
PARAMS = {"g": "generator.pt", "raw": "generator_raw.pt", "d": "critic.pt"}  # sampled, trained
CURVES = "curves.png"  # drawn by plots/make_gifs.py
SWEEP = "sweep.json"  # written by a sweep that pruned the run (experiments/runner.py)
RUN_FILES = (CONFIG, METRICS, SUMMARY, ENSEMBLE, *PARAMS.values(), CURVES, CHECKPOINT, SWEEP)
EVENTS = "events.out.tfevents.*"  # TensorBoard's (--tensorboard, harness/board.py)
LOCK = ".lock"  # held (filelock) by the process that writes the folder
WRITER = ".writer"  # which process that is: "pid N on HOST"
HELD: dict[Path, filelock.BaseFileLock] = {}  # the locks of the folders this process writes
ARRAYS = ("state", "losses", "rngs")  # a checkpoint's (nested dicts of) arrays


# ---- Writing and reading whole files and rows ----------------------------------------------


class FolderUnwritable(OSError):
    """A run folder's file could not be written (a full disk, a folder gone, no permission)."""

    def __init__(self, file, reason: str, epoch: int | None, folder: Path) -> None:
        super().__init__(f"cannot write {file}: {reason}")
        self.file = file
        self.reason = reason
        self.epoch = epoch  # the epoch whose checkpoint is intact; None: none was written
        self.folder = folder  # the run's folder, which --resume goes on with

    def __reduce__(self):  # sent back from the recording process
        return (FolderUnwritable, (self.file, self.reason, self.epoch, self.folder))


def naming(path: Path, error: OSError) -> OSError:
    """The error of a write to `path` that names `path` (a write to an open file names none; a
    temporary file's name is not the user's)."""
    return OSError(error.errno, error.strerror or str(error), str(path))


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file beside `path`, then rename it over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise naming(path, e) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def read_json(path: Path) -> dict:
    """A JSON file, or {} where it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_text(path: Path) -> str:
    """A small text file's stripped text, or "" where it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return ""


class Table(NamedTuple):
    file: IO  # the open CSV file, line-buffered
    writer: csv.DictWriter  # writes a row (a dict) to it


def open_table(path: Path, columns: list[str], append: bool = False) -> Table:
    """A CSV file and its writer (appending to the rows already there, or starting anew); every
    row is on disk as soon as it is written (a missing value, None, is an empty cell). Rows
    appended keep the columns the file has: a run recorded by an earlier version of lab5 goes
    on in its own columns."""
    if append:
        with open(path, newline="") as f:
            columns = next(csv.reader(f))
    file = open(path, "a" if append else "w", newline="", buffering=1)
    writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
    if not append:
        writer.writeheader()
    return Table(file, writer)


def write_row(table: Table, row: dict) -> None:
    """A row on disk; an error names the table's file."""
    try:
        table.writer.writerow(row)
    except OSError as e:
        raise naming(Path(table.file.name), e) from None


def read_table(path: Path) -> list[dict]:
    """A table's rows as numbers (None for an empty cell)."""
    with open(path, newline="") as f:
        return [{k: float(v) if v else None for k, v in row.items()} for row in csv.DictReader(f)]


def complete_rows(path: Path) -> list[dict]:
    """The rows of a table that a run is still writing, but for a line still being written;
    [] where there is none yet."""
    try:
        lines = [line for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]
    except OSError:
        return []
    return [{k: float(v) if v else None for k, v in row.items()} for row in csv.DictReader(lines)]


# ---- The files of a run ---------------------------------------------------------------------


def write_configs(folders: dict[Path, dict], run: Path, epoch: int | None) -> None:
    """Each folder's config.json (the run's, and each member's); `epoch`: the checkpoint kept,
    should the disk refuse (the lock is let go then: the run ends)."""
    try:
        for folder, config in folders.items():
            write_json(folder / CONFIG, config)
    except OSError as e:
        unlock_folder(run)
        raise FolderUnwritable(e.filename, e.strerror or str(e), epoch, run) from None


def read_config(folder: Path) -> dict:
    """The config.json of the run in `folder`; none, or not a run's, is a one-line error."""
    try:
        config = json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise UserError(f"{folder} holds no lab5 run (no config.json)") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{folder}/config.json is unreadable ({e})") from None
    if not isinstance(config, dict) or "variant" not in config:
        raise UserError(f"{folder}/config.json is not a lab5 run's config")
    return config


def config_of(folder: Path) -> dict:
    """A run's config.json as it is, or {} where it cannot be read (the page shows what it can)."""
    return read_json(folder / CONFIG)


def write_summary(folder: Path, summary: dict) -> None:
    write_json(folder / SUMMARY, summary)


def read_summary(folder: Path) -> dict:
    """A run's summary.json, or {} where it has none yet (or it cannot be read)."""
    return read_json(folder / SUMMARY)


def metrics_table(folder: Path, columns: list[str], append: bool) -> Table:
    return open_table(folder / METRICS, columns, append)


def ensemble_table(folder: Path, columns: list[str], append: bool) -> Table:
    return open_table(folder / ENSEMBLE, columns, append)


def table_of(folder: Path) -> Path:
    """The table a run's curves are drawn from: an ensemble's means, or a model's rows."""
    return folder / ENSEMBLE if (folder / ENSEMBLE).exists() else folder / METRICS


def read_metrics(folder: Path) -> list[dict]:
    return read_table(folder / METRICS)


def has_table(folder: Path) -> bool:
    return (folder / METRICS).exists() or (folder / ENSEMBLE).exists()


def summary_time(folder: Path) -> float:
    """When the run last wrote its summary (0 where it has none)."""
    try:
        return (folder / SUMMARY).stat().st_mtime
    except OSError:
        return 0.0


def picture_inputs(folder: Path) -> list[Path]:
    """What a run's pictures are made from: its frames, tables, config and summary, and its
    members' tables (an ensemble's curves show them)."""
    own = [folder / name for name in (METRICS, ENSEMBLE, CONFIG, SUMMARY)]
    return [*frames(folder).values(), *own, *folder.glob(f"*/{METRICS}")]


def frame_path(folder: Path, epoch: int) -> Path:
    return folder / "frames" / f"epoch_{epoch:04d}.png"


def frames(folder: Path) -> dict[int, Path]:
    """A run's frames by epoch."""
    return {int(p.stem.split("_")[1]): p for p in (folder / "frames").glob("epoch_*.png")}


def save_frame_arrays(folder: Path, epoch: int, arrays: dict) -> None:
    """What a frame shows, as arrays (a string is an array too), beside its picture."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            np.savez(file, **arrays)

    atomic_write(frame_path(folder, epoch).with_suffix(".npz"), write)


def frame_files(folder: Path) -> list[Path]:
    """A run's frames' pictures and arrays."""
    return [*folder.glob("frames/epoch_*.png"), *folder.glob("frames/epoch_*.npz")]


def frame_arrays(folder: Path) -> dict[int, dict]:
    """Every frame's arrays (save_frame_arrays) by epoch; a string comes back as a str."""
    found = {}
    for path in sorted((folder / "frames").glob("epoch_*.npz")):
        with np.load(path) as saved:
            arrays = {k: saved[k].item() if saved[k].dtype.kind == "U" else saved[k] for k in saved}
        found[int(path.stem.split("_")[1])] = arrays
    return found


def gif_path(folder: Path) -> Path:
    """Where plots/make_gifs.py puts a run's GIF: beside its folder, which --overwrite empties."""
    return folder.with_name(folder.name + ".gif")


def curves_path(folder: Path) -> Path:
    return folder / CURVES


def mark_pruned(folder: Path, study: str, trial: int, epoch: int) -> None:
    mark = {"study": study, "trial": trial, "state": "pruned", "epoch": epoch}
    write_json(folder / SWEEP, mark)


def read_sweep_mark(folder: Path) -> dict:
    return read_json(folder / SWEEP)


# ---- The torch files: torch is imported where they are read or written, not before ----------


def save_torch(path: Path, obj) -> None:
    """torch.save, atomically, through a file opened here, so that a full disk is the OSError
    that says so (ENOSPC), not a RuntimeError of torch's zip writer."""
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            try:
                torch.save(obj, file)
            except RuntimeError as e:  # the writer's own error, raised over the file's
                if isinstance(e.__context__, OSError):
                    raise e.__context__ from None
                raise

    atomic_write(path, write)


def save_params(folder: Path, params: dict[str, dict]) -> None:
    """Each network's parameters ({"g": ..., "raw": ..., "d": ...}), as dicts that
    nn.Sequential.load_state_dict accepts."""
    import torch

    for name, tensors in params.items():
        plain = {k: torch.as_tensor(v).detach().cpu().clone() for k, v in tensors.items()}
        save_torch(folder / PARAMS[name], plain)


def has_params(folder: Path) -> bool:
    return (folder / PARAMS["g"]).exists()


def load_params(folder: Path, name: str = "g") -> dict:
    """A network's saved parameters: the generator sampled (g), as trained (raw), the critic."""
    import torch

    return torch.load(folder / PARAMS[name], weights_only=True)


def map_arrays(f: Callable, snapshot: dict) -> dict:
    """f over the leaves of a snapshot's ARRAYS; its other entries as they are."""
    from lab5 import tree_map

    return {k: tree_map(f, v) if k in ARRAYS else v for k, v in snapshot.items()}


def save_checkpoint(folder: Path, snapshot: dict) -> None:
    """An epoch's snapshot (as training sends it: NumPy arrays) as plain tensors, which
    torch.load reads without lab5; written last of an epoch's files, so that its epoch is
    always fully recorded."""
    import torch

    kept = {k: snapshot[k] for k in ("epoch", "seconds", *ARRAYS)}
    save_torch(folder / CHECKPOINT, map_arrays(torch.from_numpy, kept))


def load_checkpoint(folder: Path, members: int) -> dict:
    """A checkpoint as the snapshot it was made from; a missing or unreadable one (a torn or
    foreign file fails in many ways) is a one-line error, and touches nothing."""
    import torch

    path = folder / CHECKPOINT
    if not path.exists():
        raise UserError(f"{path} is missing: the run cannot be resumed")
    try:
        saved = map_arrays(lambda t: t.numpy(), torch.load(path, weights_only=True))
        if len(saved["rngs"]) != members or not isinstance(saved["epoch"], int):
            raise ValueError("not this run's")
    except Exception as e:  # noqa: BLE001
        raise UserError(
            f"{path} is unreadable ({type(e).__name__}: {e}): the run cannot be resumed from it"
        ) from None
    return saved


# ---- A new folder, never over another run; a resumed one, taken back to its checkpoint ----


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
    """OUT if nothing is there, else the first free one of OUT_2, OUT_3, ..."""
    run = Path(out)
    number = 2
    while is_taken(run):
        run = Path(f"{out}_{number}")
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
    the first free one of OUT_2, OUT_3, ...; with overwrite, OUT itself. Anything but a run is
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
        for old in [*frame_files(run), *run.glob(EVENTS), *(run / name for name in RUN_FILES)]:
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
        for table in [folder / METRICS, folder / ENSEMBLE]:
            if table.exists():
                rewind_table(table, epoch)
        later = [f for f in frame_files(folder) if int(f.stem[6:]) >= epoch]
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
    summary = {"epochs_done": 0, "status": "running", **read_summary(folder)}
    checkpoint = load_checkpoint(folder, len(names)) if summary["epochs_done"] > 0 else None
    done = checkpoint["epoch"] if checkpoint else 0
    if done > cfg["epochs"] or done == cfg["epochs"] and summary["status"] == "completed":
        raise UserError(f"{folder} has trained {done} epochs; --epochs N > {done} extends it")
    (folder / SWEEP).unlink(missing_ok=True)  # a pruned run goes on: no longer pruned
    rewind(list(dict.fromkeys([folder, *dirs])), done)
    return folder, dirs, checkpoint


# ---- Finding runs, and what they measured --------------------------------------------------


def is_run_dir(path: Path) -> bool:
    """Does this folder hold a lab5 run (a config.json that names a variant)?"""
    try:
        return bool(read_config(path))
    except UserError:
        return False


def members(folder: Path) -> list[Path]:
    """The folders of a run's members (the run's own for a single model); none before its
    config.json is written."""
    names = read_json(folder / CONFIG).get("members", [])
    if len(names) < 2:
        return [folder] if names else []
    return [folder / name for name in names]


def find_runs(root: Path) -> list[tuple[Path, list[Path]]]:
    """Every run folder under root (or root itself) with its members (none unless it is an
    ensemble), a member listed under its ensemble only."""
    runs = sorted(c.parent for c in Path(root).rglob(CONFIG) if is_run_dir(c.parent))
    inner = {run: [m for m in runs if m.parent == run] for run in runs}
    nested = {m for ms in inner.values() for m in ms}
    return [(run, inner[run]) for run in runs if run not in nested]


def w1_ratios(member: Path, since: float = 0.0) -> dict[int, float]:
    """A member's (or a model's) W1 / noise floor at each epoch scored so far; nothing where its
    summary is older than `since` (an earlier run's, about to be replaced) or has no floor."""
    try:
        if (member / SUMMARY).stat().st_mtime < since:
            return {}
    except OSError:
        return {}
    floor = read_summary(member).get("noise_floor", {}).get("w1")
    rows = complete_rows(member / METRICS) if floor else []
    return {int(r["epoch"]): r["w1"] / floor for r in rows if r["w1"] is not None}


def ensemble_ratios(folder: Path, since: float = 0.0) -> dict[int, float]:
    """The mean over a run's members of W1 / noise floor, at each epoch that every member has
    been scored at so far."""
    curves = [w1_ratios(m, since) for m in members(folder)]
    if not curves or not all(curves):
        return {}
    epochs = sorted(set.intersection(*(set(c) for c in curves)))
    return {e: sum(c[e] for c in curves) / len(curves) for e in epochs}


def run_end(folder: Path) -> dict:
    """How far a run got, from its summary.json."""
    summary = read_summary(folder)
    if not summary:
        return {"status": "not started", "epochs_done": 0, "diverged_members": None}
    return {key: summary.get(key) for key in ("status", "epochs_done", "diverged_members")}
