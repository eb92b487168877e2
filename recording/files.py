"""The files of a run folder, written whole or a row at a time, and read back.

A file is written through a temporary file beside it and renamed over it, so that an interrupt
or a crash never leaves half of one; a table is written a row at a time, each row on disk as
soon as it is written. plots/ reads run folders through these readers, and so nothing here
imports torch (the torch files are checkpoint.py's): make_gifs.py starts in a second, not three.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import IO, Callable, NamedTuple


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


def read_text(path: Path) -> str:
    """A small text file's stripped text, or "" where it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return ""


def read_json(path: Path) -> dict:
    """A run's JSON file, or {} where it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


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
