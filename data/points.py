"""Reading a points file, and the toy distributions of the GAN literature.

A points file holds an N×2 array of finite numbers with at least two distinct points; anything
else is a UserError whose message says, in one line, what is wrong and where.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse
import torch

from errors import UserError

ROOT = Path(__file__).resolve().parents[1]


# PacGAN's 2D-ring and 2D-grid (isotropic Gaussians, so samples can be scored against the modes)
# and the swiss roll of the WGAN-GP authors' toy script; as many points as points.mat.
TOY_DATA = {
    "ring8": {
        "means": [(math.cos(math.pi * i / 4), math.sin(math.pi * i / 4)) for i in range(8)],
        "std": 0.01,
    },
    "grid25": {"means": [(i, j) for i in range(-4, 5, 2) for j in range(-4, 5, 2)], "std": 0.05},
    "swissroll": None,
}


def toy_points(name: str, rng: torch.Generator, n: int = 8192) -> np.ndarray:
    modes = TOY_DATA[name]
    f64 = torch.float64
    if modes is None:  # t ∈ [1.5π, 4.5π], (t cos t, t sin t) / 7.5 with noise 0.25 / 7.5
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=rng, dtype=f64))
        roll = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
        return ((roll + 0.25 * torch.randn(n, 2, generator=rng, dtype=f64)) / 7.5).numpy()
    means = torch.tensor(modes["means"], dtype=f64)
    which = torch.randint(len(means), (n,), generator=rng)
    return (means[which] + modes["std"] * torch.randn(n, 2, generator=rng, dtype=f64)).numpy()


def find_data(path: str) -> Path:
    """The path as given, else relative to the repository, so the default works from anywhere."""
    given = Path(path)
    missing = not given.exists() and not given.is_absolute() and (ROOT / given).exists()
    return ROOT / given if missing else given


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# Every reader: (path, key, delimiter) -> (array, where in the file); each uses what it needs.


def read_mat(path: Path, key: str | None, delimiter: str | None) -> tuple[np.ndarray, str]:
    key = key or "xx"  # the course file's
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to MATLAB v7.3, which is HDF5
        raise UserError(
            f"{path} is a MATLAB v7.3 (HDF5) file; save it with save(..., '-v7') to read it here"
        ) from None
    except Exception as e:  # noqa: BLE001 - scipy raises many kinds for a file that is not MAT
        raise UserError(f"{path} is not a MATLAB .mat file ({' '.join(str(e).split())})") from None
    names = sorted(k for k in mat if not k.startswith("__"))
    if key not in names:
        raise UserError(
            f"{path} has no variable '{key}'; it has: {', '.join(names) or 'none'} "
            "(choose with --key)"
        )
    x = mat[key].toarray() if scipy.sparse.issparse(mat[key]) else mat[key]
    return x, f"{path}:{key}"


def read_npy(path: Path, key: str | None, delimiter: str | None) -> tuple[np.ndarray, str]:
    try:
        return np.load(path, allow_pickle=False), str(path)
    except Exception as e:  # noqa: BLE001 - not NumPy's format, or objects that need pickle
        raise UserError(f"{path} is not a NumPy .npy file of numbers ({e})") from None


def read_npz(path: Path, key: str | None, delimiter: str | None) -> tuple[np.ndarray, str]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = sorted(archive.files)
            key = key or (names[0] if len(names) == 1 else None)
            if key not in names:
                what = f"no array '{key}'" if key else f"{len(names)} arrays"
                raise UserError(
                    f"{path} has {what}; it has: {', '.join(names) or 'none'} (choose with --key)"
                )
            return archive[key], f"{path}:{key}"
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - not a zip of .npy files, or objects in it
        raise UserError(f"{path} is not a NumPy .npz file of numbers ({e})") from None


DELIMITERS = {".csv": ",", ".tsv": "\t", "tab": "\t", "\\t": "\t", "space": " "}


def read_text(path: Path, key: str | None, delimiter: str | None) -> tuple[np.ndarray, str]:
    """Two numeric columns, one point per line; '#' starts a comment; the first line may be a
    header. The delimiter: given, else by the file's suffix, else the first of , tab ; found in
    the first line of numbers, else spaces."""
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file; expected two columns of numbers") from None
    lines = [(n, line.split("#", 1)[0].strip()) for n, line in enumerate(lines, 1)]
    lines = [(n, line) for n, line in lines if line]
    sep = DELIMITERS.get(delimiter, delimiter) or DELIMITERS.get(path.suffix.lower())
    sep = sep or next((c for c in ",\t;" if any(c in line for _, line in lines[:2])), " ")
    rows = []
    for i, (n, line) in enumerate(lines):
        cells = [c.strip() for c in (line.split() if sep == " " else line.split(sep))]
        numbers = [number(c) for c in cells]
        if None in numbers and i == 0:
            continue  # a header
        if None in numbers:
            raise UserError(
                f"{path}, line {n}: '{cells[numbers.index(None)]}' is not a number;"
                " expected two numeric columns"
            )
        if len(cells) != 2 or not all(map(math.isfinite, numbers)):
            what = f"has {len(cells)} columns" if len(cells) != 2 else "has NaN or Inf"
            raise UserError(f"{path}, line {n} {what}; expected two finite numbers (x, y)")
        rows.append(numbers)
    return np.array(rows, dtype=np.float64).reshape(-1, 2), str(path)


def number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


READERS = {
    ".mat": read_mat,
    ".npy": read_npy,
    ".npz": read_npz,
    ".csv": read_text,
    ".tsv": read_text,
    ".txt": read_text,
}


def data_format(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise UserError(
            f"{path}: cannot read '{suffix or 'no suffix'}' files; expected {', '.join(READERS)}"
        )
    return suffix[1:]


def load_points(
    path: str | Path, key: str | None = None, delimiter: str | None = None
) -> tuple[np.ndarray, str]:
    """The N×2 float64 points of a .mat (variable `key`, default xx), .npy, .npz (array `key`,
    default its only one) or text file, and where in it they are; or a UserError that says
    what is wrong."""
    path = find_data(str(path))
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    x, where = READERS[f".{data_format(path)}"](path, key, delimiter)
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iuf":
        raise UserError(
            f"{where} is not a numeric array (found {getattr(x, 'dtype', type(x))}); "
            "expected N×2 points"
        )
    if x.ndim != 2 or x.shape[1] != 2:
        raise UserError(
            f"{where} has shape {'×'.join(map(str, x.shape))}; expected N×2 (one point per row)"
        )
    bad_rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad_rows):
        raise UserError(
            f"{where} has {len(bad_rows)} rows with NaN or Inf (first: row "
            f"{bad_rows[0] + 1}); expected finite points"
        )
    if len(np.unique(x, axis=0)) < 2:
        raise UserError(
            f"{where} holds {len(x)} point{'' if len(x) == 1 else 's'} and fewer than two "
            "distinct ones; there is no distribution to learn"
        )
    return x.astype(np.float64), where


MAX_TEST_SIZE = 4096  # the exact W1 is O(n³): minutes per evaluation beyond this


def check_split(n: int, train_size: int, test_size: int, source: str, fewest: int, batch) -> None:
    """Do `train_size` and `test_size` rows (counts) fit in `n`, with room for one step's
    `batch` = (batch size, critic updates) batches of training points and a test set the
    distances can use?"""
    if train_size >= n:
        raise UserError(
            f"{source} has {n} rows, not more than --train-size {train_size}: none "
            "would be left to test on"
        )
    if batch[0] * batch[1] > train_size:
        raise UserError(
            f"--batch-size {batch[0]} × --n-critic {batch[1]} needs more training "
            f"points than --train-size {train_size}"
        )
    if train_size + test_size > n:
        raise UserError(
            f"{source} has {n} rows, fewer than --train-size {train_size} + --test-size {test_size}"
        )
    if not fewest <= test_size <= MAX_TEST_SIZE:
        raise UserError(
            f"a test set of {test_size} points: the distances need {fewest} to "
            f"{MAX_TEST_SIZE} (give --test-size {MAX_TEST_SIZE} or less, or leave "
            "more rows after --train-size)"
        )
    if test_size > train_size:  # the noise floor compares it with training samples of its size
        raise UserError(
            f"--test-size {test_size} is larger than --train-size {train_size}; "
            "give a --test-size up to the training size"
        )


def split_points(
    points: np.ndarray,
    train_size: int | float,
    test_size: int | float,
    rng: torch.Generator,
    source: str = "data",
    fewest: int = 4,
    batch: tuple[int, int] = (1, 1),
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle, then `train_size` rows train and the next `test_size` (0: the rest) test;
    either a count or a fraction of the rows. The course file's rows are in cluster order:
    unshuffled, the test set would be one cluster."""
    n = len(points)
    train_size = train_size if isinstance(train_size, int) else round(train_size * n)
    test_size = test_size if isinstance(test_size, int) else round(test_size * n)
    test_size = test_size or n - train_size
    check_split(n, train_size, test_size, source, fewest, batch)
    order = torch.randperm(n, generator=rng).numpy()
    return points[order[:train_size]], points[order[train_size : train_size + test_size]]
