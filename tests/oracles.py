"""Test oracles: the metrics as their definitions say them, all pairs at once, which the tests
hold harness.evaluation's faster forms to."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from harness.evaluation import NEIGHBOURS, energy_from, knn_radii, precision_recall_from


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ over all pairs of the two empirical distributions:
    zero exactly when the sets are equal as distributions; O(n²), cheap enough for every epoch."""
    return energy_from(cdist(x, y), cdist(x, x), cdist(y, y).mean())


def precision_recall(x: np.ndarray, y: np.ndarray, k: int = NEIGHBOURS) -> tuple[float, float]:
    """Precision and recall of samples x against data y (Kynkäänniemi et al., 2019): a set's
    manifold is the union of balls around its points reaching to their k-th nearest neighbour;
    precision is the fraction of x inside y's manifold, recall the fraction of y inside x's."""
    radii = (knn_radii(cdist(x, x), k), knn_radii(cdist(y, y), k))
    return precision_recall_from(cdist(x, y), *radii)
