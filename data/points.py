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

ROOT = Path(__file__).resolve().parents[1]


class UserError(Exception):
    """A mistake in the user's flags or input file: one line on stderr, exit status 2."""


# PacGAN's 2D-ring and 2D-grid (isotropic Gaussians, so samples can be scored against the modes)
# and the swiss roll of the WGAN-GP authors' toy script; as many points as points.mat.
TOY_DATA = {"ring8": {"means": [(math.cos(math.pi * i / 4), math.sin(math.pi * i / 4))
                                for i in range(8)], "std": 0.01},
            "grid25": {"means": [(i, j) for i in range(-4, 5, 2) for j in range(-4, 5, 2)],
                       "std": 0.05},
            "swissroll": None}


def toy_points(name: str, rng: torch.Generator, n: int = 8192) -> np.ndarray:
    modes, f64 = TOY_DATA[name], torch.float64
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


def read_mat(path: Path, key: str):
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to MATLAB v7.3, which is HDF5
        raise UserError(f"{path} is a MATLAB v7.3 (HDF5) file; save it with save(..., '-v7') "
                        "to read it here") from None
    except Exception as e:  # noqa: BLE001 - scipy raises many kinds for a file that is not MAT
        raise UserError(f"{path} is not a MATLAB .mat file ({' '.join(str(e).split())})") from None
    names = sorted(k for k in mat if not k.startswith("__"))
    if key not in names:
        raise UserError(f"{path} has no variable '{key}'; it has: {', '.join(names) or 'none'} "
                        "(choose with --key)")
    return mat[key].toarray() if scipy.sparse.issparse(mat[key]) else mat[key]


def load_points(path: str | Path, key: str) -> np.ndarray:
    """The N×2 float64 array stored under `key`, or a UserError that says what is wrong."""
    path = find_data(str(path))
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    x, where = read_mat(path, key), f"{path}:{key}"
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iuf":
        raise UserError(f"{where} is not a numeric array (found {getattr(x, 'dtype', type(x))}); "
                        "expected N×2 points")
    if x.ndim != 2 or x.shape[1] != 2:
        raise UserError(f"{where} has shape {'×'.join(map(str, x.shape))}; expected N×2 (one "
                        "point per row)")
    bad_rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad_rows):
        raise UserError(f"{where} has {len(bad_rows)} rows with NaN or Inf (first: row "
                        f"{bad_rows[0] + 1}); expected finite points")
    if len(np.unique(x, axis=0)) < 2:
        raise UserError(f"{where} holds {len(x)} copies of a single point; there is no "
                        "distribution to learn")
    return x.astype(np.float64)


MAX_TEST_SIZE = 4096  # the exact W1 is O(n³): minutes per evaluation beyond this


def split_points(points: np.ndarray, train_size: int, test_size: int, rng: torch.Generator,
                 source: str = "data", fewest: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle, then `train_size` rows train and the next `test_size` (0: the rest) test.
    The file's rows are in cluster order: unshuffled, the test set would be one cluster."""
    n = len(points)
    if train_size >= n:
        raise UserError(f"{source} has {n} rows, not more than --train-size {train_size}: none "
                        "would be left to test on")
    test_size = test_size or n - train_size
    if train_size + test_size > n:
        raise UserError(f"{source} has {n} rows, fewer than --train-size {train_size} + "
                        f"--test-size {test_size}")
    if not fewest <= test_size <= MAX_TEST_SIZE:
        raise UserError(f"a test set of {test_size} points: the distances need {fewest} to "
                        f"{MAX_TEST_SIZE} (give --test-size {MAX_TEST_SIZE} or less, or leave "
                        "more rows after --train-size)")
    if test_size > train_size:  # the noise floor compares it with training samples of its size
        raise UserError(f"--test-size {test_size} is larger than --train-size {train_size}; "
                        "give a --test-size up to the training size")
    order = torch.randperm(n, generator=rng).numpy()
    return points[order[:train_size]], points[order[train_size:train_size + test_size]]
