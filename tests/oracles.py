"""Test oracles: the metrics as their definitions say them, all pairs at once, written here
apart from harness.evaluation (whose faster forms the tests hold to them)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

K = 3  # the k of the k-NN precision and recall, as in Kynkäänniemi et al.'s default


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ over all pairs of the two empirical distributions:
    zero exactly when the sets are equal as distributions."""
    return float(2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean())


def kth_neighbour_distances(points: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point (its own, 0, sorts first)."""
    return np.sort(cdist(points, points), axis=1)[:, k]


def precision_recall(x: np.ndarray, y: np.ndarray, k: int = K) -> tuple[float, float]:
    """Precision and recall of samples x against data y (Kynkäänniemi et al., 2019): a set's
    manifold is the union of balls around its points reaching to their k-th nearest neighbour;
    precision is the fraction of x inside y's manifold, recall the fraction of y inside x's."""
    between = cdist(x, y)
    inside_y = (between <= kth_neighbour_distances(y, k)[None, :]).any(axis=1)
    inside_x = (between <= kth_neighbour_distances(x, k)[:, None]).any(axis=0)
    return float(inside_y.mean()), float(inside_x.mean())
