"""The distances that measure the fit, against known answers and independent computations."""

import itertools

import numpy as np
import pytest
import scipy.stats
import torch

import lab5

rng = np.random.default_rng(0)


def test_w1_of_identical_sets_is_zero():
    x = rng.normal(size=(50, 2))
    assert lab5.wasserstein1(x, x[rng.permutation(50)]) == 0


def test_w1_of_a_translated_set_is_the_shift():
    """Jensen gives W1 ≥ ‖mean shift‖, and the identity matching attains it."""
    x = rng.normal(size=(200, 2))
    assert lab5.wasserstein1(x, x + [0.3, -0.4]) == pytest.approx(0.5, rel=1e-12)


def test_w1_on_a_line_matches_scipys_1d_distance():
    x, y = rng.normal(size=300), rng.normal(1, 2, size=300)
    embed = lambda t: np.stack([t, np.full_like(t, 0.7)], axis=1)  # noqa: E731
    assert lab5.wasserstein1(embed(x), embed(y)) == pytest.approx(scipy.stats.wasserstein_distance(x, y), rel=1e-10)


def test_w1_is_the_best_of_all_matchings():
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(7, 2))
    brute = min(np.linalg.norm(x - y[list(p)], axis=1).mean() for p in itertools.permutations(range(7)))
    assert lab5.wasserstein1(x, y) == pytest.approx(brute, rel=1e-12)


def test_energy_distance_known_answers():
    x = rng.normal(size=(100, 2))
    assert abs(lab5.energy_distance(x, x)) < 1e-12
    # two single points d apart: 2d - 0 - 0
    assert lab5.energy_distance(np.zeros((1, 2)), np.array([[3.0, 4.0]])) == pytest.approx(10.0)


def test_energy_distance_with_a_known_spread_is_the_same():
    x, y = rng.normal(size=(80, 2)), rng.normal(size=(90, 2))
    spread = np.mean([np.linalg.norm(a - b) for a in y for b in y])
    assert lab5.energy_distance(x, y, spread) == pytest.approx(lab5.energy_distance(x, y), rel=1e-12)


def test_energy_distance_on_a_line_matches_scipy():
    """scipy's 1-D energy distance is the square root of the same quantity."""
    x, y = rng.normal(size=200), rng.normal(0.5, 1.5, size=300)
    embed = lambda t: np.stack([t, np.zeros_like(t)], axis=1)  # noqa: E731
    assert lab5.energy_distance(embed(x), embed(y)) == pytest.approx(scipy.stats.energy_distance(x, y) ** 2, rel=1e-9)


def test_noise_floor_draws_training_samples_of_the_test_sets_size(monkeypatch):
    shapes = []
    real = lab5.wasserstein1
    monkeypatch.setattr(lab5, "wasserstein1", lambda x, y: shapes.append((x.shape, y.shape)) or real(x, y))
    lab5.noise_floor(rng.normal(size=(500, 2)), rng.normal(size=(120, 2)), torch.Generator().manual_seed(0), draws=3)
    assert shapes == [((120, 2), (120, 2))] * 3


def test_noise_floor_compares_equal_size_training_samples():
    train = rng.normal(size=(2000, 2))
    test = rng.normal(size=(300, 2))
    floor = lab5.noise_floor(train, test, torch.Generator().manual_seed(0), draws=4)
    again = lab5.noise_floor(train, test, torch.Generator().manual_seed(0), draws=4)
    assert floor == again and floor["draws"] == 4
    shifted = lab5.noise_floor(train + 1.0, test, torch.Generator().manual_seed(0), draws=4)
    assert floor["w1"] < 0.3 < 0.9 < shifted["w1"]  # same distribution: small; shifted by √2: large
