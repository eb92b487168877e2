"""The distances that measure the fit, against known answers and independent computations."""

import itertools

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.spatial.distance import cdist

from data.points import load_points, split_points, toy_points
from harness import evaluation, recorder
from tests import ROOT, oracles

rng = np.random.default_rng(0)


def test_w1_of_identical_sets_is_zero():
    x = rng.normal(size=(50, 2))
    assert evaluation.wasserstein1(x, x[rng.permutation(50)]) == 0


def test_w1_of_a_translated_set_is_the_shift():
    """Jensen gives W1 ≥ ‖mean shift‖, and the identity matching attains it."""
    x = rng.normal(size=(200, 2))
    assert evaluation.wasserstein1(x, x + [0.3, -0.4]) == pytest.approx(0.5, rel=1e-12)


def on_a_line(t: np.ndarray, height: float = 0.0) -> np.ndarray:
    """1-D samples as points on the horizontal line y = height."""
    return np.stack([t, np.full_like(t, height)], axis=1)


def test_w1_on_a_line_matches_scipys_1d_distance():
    x = rng.normal(size=300)
    y = rng.normal(1, 2, size=300)
    assert evaluation.wasserstein1(on_a_line(x, 0.7), on_a_line(y, 0.7)) == pytest.approx(
        scipy.stats.wasserstein_distance(x, y), rel=1e-10
    )


def test_w1_is_the_best_of_all_matchings():
    x = rng.normal(size=(7, 2))
    y = rng.normal(size=(7, 2))
    brute = min(
        np.linalg.norm(x - y[list(p)], axis=1).mean() for p in itertools.permutations(range(7))
    )
    assert evaluation.wasserstein1(x, y) == pytest.approx(brute, rel=1e-12)


def test_energy_distance_known_answers():
    x = rng.normal(size=(100, 2))
    assert abs(oracles.energy_distance(x, x)) < 1e-12
    # two single points d apart: 2d - 0 - 0
    assert oracles.energy_distance(np.zeros((1, 2)), np.array([[3.0, 4.0]])) == pytest.approx(10.0)


def test_energy_from_distances_is_the_energy_distance():
    x = rng.normal(size=(80, 2))
    y = rng.normal(size=(90, 2))
    spread = np.mean([np.linalg.norm(a - b) for a in y for b in y])
    assert evaluation.energy_from(cdist(x, y), cdist(x, x), spread) == pytest.approx(
        oracles.energy_distance(x, y), rel=1e-12
    )


def brute_precision_recall(x, y, k):
    """The definition, one point at a time."""

    def radius(points, i):
        return sorted(np.linalg.norm(points - points[i], axis=1))[k]  # [0] is the point itself

    ry = [radius(y, j) for j in range(len(y))]
    rx = [radius(x, i) for i in range(len(x))]
    precision = np.mean(
        [any(np.linalg.norm(xi - y[j]) <= ry[j] for j in range(len(y))) for xi in x]
    )
    recall = np.mean([any(np.linalg.norm(yj - x[i]) <= rx[i] for i in range(len(x))) for yj in y])
    return precision, recall


def test_precision_recall_matches_the_definition():
    x = rng.normal(size=(60, 2))
    y = rng.normal(0.7, 1.3, size=(70, 2))
    for k in (1, 3, 5):
        assert oracles.precision_recall(x, y, k) == pytest.approx(brute_precision_recall(x, y, k))


def test_precision_recall_known_answers():
    y = rng.normal(size=(200, 2))
    assert oracles.precision_recall(y.copy(), y) == (1.0, 1.0)
    assert oracles.precision_recall(y + 100, y) == (0.0, 0.0)
    collapsed = np.repeat(y[:1], 200, axis=0) + rng.normal(scale=1e-6, size=(200, 2))
    # every sample realistic, little data covered
    precision, recall = oracles.precision_recall(collapsed, y)
    assert precision == 1.0 and recall < 0.05


def test_sample_metrics_agree_with_the_separate_functions():
    x = rng.normal(size=(100, 2))
    y = rng.normal(0.2, 1.1, size=(120, 2))
    got = evaluation.sample_metrics(x, evaluation.describe_test_set(y, k=3))
    assert got["energy"] == pytest.approx(oracles.energy_distance(x, y), rel=1e-12)
    assert (got["precision"], got["recall"]) == oracles.precision_recall(x, y, 3)


MEANS = np.array([(np.cos(2 * np.pi * i / 8), np.sin(2 * np.pi * i / 8)) for i in range(8)])


def test_mode_metrics_known_answers():
    on_three = np.repeat(MEANS[:3], 10, axis=0) + 0.005  # well inside 3σ = 0.03
    got = evaluation.mode_metrics(on_three, MEANS, 0.01)
    assert got["modes"] == 3 and got["hq"] == 1.0
    assert got["reverse_kl"] == pytest.approx(
        scipy.stats.entropy([1 / 3] * 3 + [0] * 5, [1 / 8] * 8)
    )
    assert got["reverse_kl"] == pytest.approx(np.log(8 / 3))
    far = evaluation.mode_metrics(MEANS * 3, MEANS, 0.01)
    assert far["modes"] == 0 and far["hq"] == 0 and np.isnan(far["reverse_kl"])


def test_mode_metrics_of_the_mixture_itself():
    """Samples of the mixture: every mode, and P(‖N(0, σ²I₂)‖ ≤ 3σ) = 1 − e^(−4.5) high quality."""
    points = toy_points("ring8", torch.Generator().manual_seed(0), n=20000)
    got = evaluation.mode_metrics(points, MEANS, 0.01)
    assert got["modes"] == 8 and got["reverse_kl"] < 0.01
    assert got["hq"] == pytest.approx(1 - np.exp(-4.5), abs=3 * np.sqrt(0.011 * 0.989 / 20000))


def test_epochs_to_fit_is_the_start_of_the_last_stretch_below():
    assert evaluation.epochs_to_fit(list(zip([0, 5, 10, 15, 20], [9, 1, 3, 1, 1])), 2) == 15
    assert evaluation.epochs_to_fit(list(zip([0, 5, 10], [1, 1, 1])), 2) == 0
    assert evaluation.epochs_to_fit(list(zip([0, 5, 10], [1, 1, 3])), 2) is None
    assert (
        evaluation.epochs_to_fit([], 2) is None
    )  # never measured (--frame-every 0 --eval-every 0)


def test_energy_distance_on_a_line_matches_scipy():
    """scipy's 1-D energy distance is the square root of the same quantity."""
    x = rng.normal(size=200)
    y = rng.normal(0.5, 1.5, size=300)
    assert oracles.energy_distance(on_a_line(x), on_a_line(y)) == pytest.approx(
        scipy.stats.energy_distance(x, y) ** 2, rel=1e-9
    )


def test_noise_floor_draws_training_samples_of_the_test_sets_size(monkeypatch):
    shapes = []
    real = evaluation.wasserstein1
    monkeypatch.setattr(
        evaluation, "wasserstein1", lambda x, y: shapes.append((x.shape, y.shape)) or real(x, y)
    )
    evaluation.noise_floor(
        rng.normal(size=(500, 2)),
        rng.normal(size=(120, 2)),
        torch.Generator().manual_seed(0),
        draws=3,
    )
    assert shapes == [((120, 2), (120, 2))] * 3


def test_noise_floor_compares_equal_size_training_samples():
    train = rng.normal(size=(2000, 2))
    test = rng.normal(size=(300, 2))
    floor = evaluation.noise_floor(train, test, torch.Generator().manual_seed(0), draws=4)
    again = evaluation.noise_floor(train, test, torch.Generator().manual_seed(0), draws=4)
    assert floor == again and floor["draws"] == 4
    assert floor["precision"] > 0.8 and floor["recall"] > 0.8
    shifted = evaluation.noise_floor(train + 1.0, test, torch.Generator().manual_seed(0), draws=4)
    assert floor["w1"] < 0.3 < 0.9 < shifted["w1"]  # same distribution: small; shifted by √2: large


def two_noisy_circles(n: int, rng) -> np.ndarray:
    """Points on circles of radius 1 and 2 with Gaussian noise of 0.1: a shape no blob has."""
    radius = rng.integers(1, 3, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    circle = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return circle + 0.1 * rng.normal(size=(n, 2))


def test_a_blob_of_the_data_s_mean_and_covariance_scores_about_the_floor_on_a_blob():
    """gaussian_w1 on Gaussian data is the noise floor itself (the blob is the data); on two
    circles of as many points it is well above (twice, at 500 test points)."""
    rng = np.random.default_rng(0)
    train = rng.normal(size=(3000, 2)) @ [[1.0, 0.0], [0.5, 0.3]]
    test = rng.normal(size=(500, 2)) @ [[1.0, 0.0], [0.5, 0.3]]
    floor = evaluation.noise_floor(train, test, torch.Generator().manual_seed(0), draws=4)
    blob = evaluation.gaussian_w1(train, test, torch.Generator().manual_seed(1))
    assert blob == pytest.approx(floor["w1"], rel=0.25)
    circles = two_noisy_circles(3500, rng)
    blob = evaluation.gaussian_w1(circles[:3000], circles[3000:], torch.Generator().manual_seed(1))
    floor = evaluation.noise_floor(circles[:3000], circles[3000:], torch.Generator().manual_seed(0))
    assert blob > 1.5 * floor["w1"]


@pytest.mark.parametrize("data,warned", [("shipped", False), ("circles", True)])
def test_a_test_set_too_small_to_tell_a_fit_from_a_blob_is_warned_of(data, warned):
    """The lab's data with its default split (1192 test points): a Gaussian blob scores about
    4× the floor, so "within 2×" means a fit; 500 points of two noisy circles (73 test points):
    a blob is within 2×."""
    rng = np.random.default_rng(0)
    points = load_points(ROOT / "data" / "points.mat")[0] if data == "shipped" else None
    points = two_noisy_circles(500, rng) if points is None else points
    train, test = split_points(points, 7000 / 8192, 0, torch.Generator().manual_seed(0))
    floor = evaluation.noise_floor(train, test, torch.Generator().manual_seed(1))
    blob = evaluation.gaussian_w1(train, test, torch.Generator().manual_seed(2))
    warnings = recorder.small_test_warnings(len(test), floor["w1"], blob, 2.0)
    assert bool(warnings) == warned
    if warned:
        assert warnings[0].startswith("a Gaussian blob scores ")
        assert warnings[0].endswith(
            f"× the floor ({len(test)} test points): within 2×, 'fitted' means little"
        )
