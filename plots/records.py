"""The files of a run folder: written whole through a temporary file (an interrupt or a crash
never leaves half of one) or a row at a time, and read back as rows.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Callable


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
