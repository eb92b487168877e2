"""The numbers that the tables, curves and frames show: how far a set of generated points is
from the held-out test points, what a perfect generator would score (the noise floor), and the
mean and standard error over an ensemble. Arrays in, numbers out; no training code here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist, pdist
from scipy.special import xlogy

NEIGHBOURS = 3  # k of the k-NN precision and recall
HIGH_QUALITY_SDS = 3  # a sample within this many standard deviations of its nearest mode
MODE_COLUMNS = ["modes", "hq", "reverse_kl"]


def metric_columns(variant: str, modes: bool = False) -> list[str]:
    return [
        "epoch",
        "g_loss",
        "d_loss",
        *(["penalty", "weighted_penalty", "slope"] if variant == "wgan_gp" else []),
        "energy",
        "precision",
        "recall",
        *(MODE_COLUMNS if modes else []),
        "w1",
        "seconds",
    ]


def wasserstein1(x: np.ndarray, y: np.ndarray) -> float:
    """Exact Wasserstein-1 distance between two equal-size point sets: the mean Euclidean
    distance of the optimal one-to-one matching (O(n³))."""
    cost = cdist(x, y)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def energy_from(d_xy: np.ndarray, d_xx: np.ndarray, y_spread: float) -> float:
    return float(2 * d_xy.mean() - d_xx.mean() - y_spread)


def knn_radii(d_self: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point, from the set's distance matrix
    (whose zero diagonal is every point's nearest)."""
    return np.partition(d_self, k, axis=1)[:, k]


def precision_recall_from(d_xy: np.ndarray, x_radii, y_radii) -> tuple[float, float]:
    precision = (d_xy <= y_radii[None, :]).any(axis=1).mean()
    recall = (d_xy <= x_radii[:, None]).any(axis=0).mean()
    return float(precision), float(recall)


def describe_test_set(test: np.ndarray, k: int = NEIGHBOURS) -> dict:
    """What every epoch's comparison needs of the test set, computed once."""
    distances = cdist(test, test)
    return {
        "points": test,
        "spread": float(distances.mean()),
        "radii": knn_radii(distances, k),
        "k": k,
    }


def sample_metrics(fake: np.ndarray, test: dict) -> dict:
    """The cheap distances, every epoch: energy distance, precision and recall to the test set.
    The generated set's own distances come as one triangle (pdist) and its k-NN radii from a
    k-d tree, half the work of the full matrix: they run once per member and epoch."""
    d_ft = cdist(fake, test["points"])
    n = len(fake)
    k = test["k"]
    own_mean = 2 * pdist(fake).sum() / n**2  # the zero diagonal included, as in cdist's mean
    radii = cKDTree(fake).query(fake, k=k + 1)[0][:, k]  # [0] is each point itself
    precision, recall = precision_recall_from(d_ft, radii, test["radii"])
    return {
        "energy": float(2 * d_ft.mean() - own_mean - test["spread"]),
        "precision": precision,
        "recall": recall,
    }


def mode_metrics(points: np.ndarray, means: np.ndarray, std: float) -> dict:
    """How a sample covers a mixture of isotropic Gaussians (PacGAN, VEEGAN): a point is of high
    quality within 3 standard deviations of its nearest mode; `modes` counts the modes with at
    least one such point, `hq` is their fraction of all points, and `reverse_kl` is
    KL(modes of the high-quality points ‖ uniform over modes) (NaN when there are none)."""
    distances = cdist(points, means)
    nearest = distances.argmin(axis=1)
    good = distances.min(axis=1) <= HIGH_QUALITY_SDS * std
    counts = np.bincount(nearest[good], minlength=len(means))
    share = counts / max(counts.sum(), 1)
    reverse_kl = float(np.sum(xlogy(share, share * len(means)))) if counts.sum() else math.nan
    return {"modes": int((counts > 0).sum()), "hq": float(good.mean()), "reverse_kl": reverse_kl}


def noise_floor(
    train: np.ndarray,
    test: np.ndarray,
    rng: torch.Generator,
    draws: int = 10,
    modes: dict | None = None,
    counted: int = 0,
) -> dict:
    """What a perfect generator would score: the metrics of samples of the training set of the
    test set's size against the test set (mean, and standard deviation over draws); the mode
    metrics, which depend on how many points they count, on `counted` points where given."""
    reference = describe_test_set(test)
    scores = []
    for _ in range(draws):
        sample = train[torch.randperm(len(train), generator=rng)[: len(test)].numpy()]
        counted_sample = (
            train[torch.randperm(len(train), generator=rng)[:counted].numpy()]
            if counted and modes
            else sample
        )
        scores.append(
            {
                "w1": wasserstein1(sample, test),
                **sample_metrics(sample, reference),
                **(mode_metrics(counted_sample, **modes) if modes else {}),
            }
        )
    floor = {"draws": draws}
    for key in scores[0]:
        values = [score[key] for score in scores]
        floor[key] = float(np.mean(values))
        floor[f"{key}_sd"] = float(np.std(values))
    return floor


def gaussian_w1(train: np.ndarray, test: np.ndarray, rng: torch.Generator, draws: int = 3):
    """W1 to the test set of samples of its size from a Gaussian with the training points' mean
    and covariance (mean over draws): what a generator that learnt no shape would score."""
    # a square root of the covariance that a flat cloud (points on a line) also has
    values, vectors = np.linalg.eigh(np.cov(train.T))
    factor = vectors * np.sqrt(np.clip(values, 0, None))
    scores = []
    for _ in range(draws):
        z = torch.randn(len(test), 2, generator=rng, dtype=torch.float64).numpy()
        scores.append(wasserstein1(train.mean(0) + z @ factor.T, test))
    return float(np.mean(scores))


def epochs_to_fit(history: list[tuple[int, float]], threshold: float) -> int | None:
    """The first epoch from which the metric stays at or below `threshold` (None if it ends
    above, or was never measured)."""
    fit = None
    for epoch, value in history:
        fit = None if value > threshold else epoch if fit is None else fit
    return fit


def mean_and_se(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error (sample standard deviation / √n; 0 for one value)."""
    se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(np.mean(values)), se


def ensemble_row(epoch: int, rows: list[dict], columns: list[str]) -> dict:
    """Every metric's mean and standard error over the members (None where none has it)."""
    row = {"epoch": epoch, "members": len(rows)}
    for column in columns:
        values = [r[column] for r in rows if r.get(column) is not None]
        row[f"{column}_mean"], row[f"{column}_se"] = mean_and_se(values) if values else (None,) * 2
    return row
