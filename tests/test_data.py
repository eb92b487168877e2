"""The shipped data file, its likeness to the course's original, loading, validation and split."""

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from scipy.spatial.distance import cdist

import harness.main
from data import points
from data.make_points import CLUSTERS, POINTS_PER_CLUSTER, make_points
from data.points import load_points, split_points
from errors import UserError
from tests import ROOT, oracles

SHIPPED = ROOT / "data" / "points.mat"
ORIGINAL = ROOT.parent / "shared" / "data" / "points.mat"
needs_original = pytest.mark.skipif(
    not ORIGINAL.exists(), reason="the course's original points.mat is not beside the repository"
)


def test_shipped_file_is_what_the_script_makes():
    shipped = scipy.io.loadmat(SHIPPED)
    for name, array in make_points(0).items():
        # multivariate_normal factors the covariance with LAPACK, whose last bit differs by CPU
        assert shipped[name].dtype == np.float64, name
        np.testing.assert_allclose(shipped[name], array, rtol=0, atol=1e-12, err_msg=name)
    assert shipped["xx"].shape == (8192, 2)
    np.testing.assert_array_equal(
        shipped["xx"], 0.04 * np.vstack([shipped[c] for c in "abcd"]) + 0.5
    )


def cluster_z_scores(sample: np.ndarray, mean, cov) -> np.ndarray:
    """How many standard errors a sample's mean and covariance entries lie from the given ones."""
    mean = np.asarray(mean)
    cov = np.asarray(cov)
    n = len(sample)
    z_mean = (sample.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
    var = np.diag(cov)
    se_cov = np.sqrt((np.outer(var, var) + cov**2) / n)  # Gaussian sampling error of a covariance
    return np.concatenate([z_mean, ((np.cov(sample.T) - cov) / se_cov).ravel()])


@pytest.mark.parametrize("name", "abcd")
def test_shipped_clusters_match_the_description(name):
    z = cluster_z_scores(scipy.io.loadmat(SHIPPED)[name], *CLUSTERS[name])
    assert np.abs(z).max() < 4


@needs_original
@pytest.mark.parametrize("name", "abcd")
def test_shipped_clusters_match_the_original_within_sampling_error(name):
    ours = scipy.io.loadmat(SHIPPED)[name]
    theirs = scipy.io.loadmat(ORIGINAL)[name]
    assert len(ours) == len(theirs) == POINTS_PER_CLUSTER
    # the difference of two independent samples has √2 × one sample's standard error
    z = cluster_z_scores(ours, theirs.mean(0), np.cov(theirs.T)) / np.sqrt(2)
    assert np.abs(z).max() < 4


@needs_original
def test_shipped_points_are_no_farther_from_the_original_than_its_own_halves():
    ours = scipy.io.loadmat(SHIPPED)["xx"]
    theirs = scipy.io.loadmat(ORIGINAL)["xx"]
    rng = np.random.default_rng(0)
    halves = []
    for _ in range(5):
        order = rng.permutation(len(theirs))
        halves.append(oracles.energy_distance(theirs[order[:4096]], theirs[order[4096:]]))
    assert oracles.energy_distance(ours, theirs) <= np.mean(halves)
    assert load_points(ORIGINAL, "xx")[0].shape == (8192, 2)


def test_load_points_returns_float64_rows(tmp_path):
    path = tmp_path / "p.mat"
    scipy.io.savemat(path, {"pts": np.arange(10, dtype=np.int32).reshape(5, 2)})
    points, where = load_points(path, "pts")
    assert (
        points.dtype == np.float64
        and where == f"{path}:pts"
        and points.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    )


def text_file(path: Path) -> Path:
    path.write_text("not a MAT file")
    return path


def write(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / "input.mat"
    scipy.io.savemat(path, arrays)
    return path


@pytest.mark.parametrize(
    "make,key,expected",
    [
        (lambda t: t / "nowhere.mat", "xx", "data file not found"),
        (lambda t: text_file(t / "x.mat"), "xx", "is not a MATLAB .mat file"),
        (
            lambda t: write(t, yy=np.zeros((9, 2)), zz=np.zeros(1)),
            "xx",
            "has no variable 'xx'; it has: yy, zz",
        ),
        (lambda t: write(t, xx=np.zeros((9, 3))), "xx", "has shape 9×3; expected N×2"),
        (lambda t: write(t, xx=np.zeros(9)), "xx", "has shape 1×9; expected N×2"),
        (lambda t: write(t, xx=np.array(["ab", "cd"])), "xx", "is not a numeric array"),
        (
            lambda t: write(t, xx=np.array([[0, 1], [np.nan, 2], [3, np.inf]])),
            "xx",
            "has 2 rows with NaN or Inf (first: row 2)",
        ),
        (
            lambda t: write(t, xx=np.ones((50, 2))),
            "xx",
            "holds 50 points and fewer than two distinct",
        ),
    ],
    ids=["missing", "not-mat", "no-key", "three-columns", "vector", "strings", "nan", "one-point"],
)
def test_bad_input_is_a_one_line_error(tmp_path, make, key, expected):
    path = make(tmp_path)
    with pytest.raises(UserError, match=re.escape(expected)) as err:
        load_points(path, key)
    assert "\n" not in str(err.value) and str(path.name) in str(err.value)


def test_a_sparse_matrix_is_read_as_points(tmp_path):
    import scipy.sparse

    path = write(
        tmp_path, xx=scipy.sparse.csc_matrix(np.array([[0.0, 1.0], [2.0, 0.0], [3.0, 4.0]]))
    )
    assert load_points(path, "xx")[0].tolist() == [[0, 1], [2, 0], [3, 4]]


def rng(seed):
    return torch.Generator().manual_seed(seed)


def test_split_is_seeded_disjoint_and_exact():
    points = np.arange(200.0).reshape(100, 2)
    train, test = split_points(points, 70, 0, rng(3))
    again, _ = split_points(points, 70, 0, rng(3))
    other, _ = split_points(points, 70, 0, rng(4))
    assert train.shape == (70, 2) and test.shape == (30, 2)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert sorted(np.vstack([train, test])[:, 0]) == list(points[:, 0])  # every row once
    assert split_points(points, 70, 10, rng(3))[1].shape == (10, 2)


@pytest.mark.parametrize("train,test", [(100, 0), (90, 20), (50, 51)])
def test_a_split_that_does_not_fit_is_an_error(train, test):
    with pytest.raises(UserError, match="f.mat:xx has 100 rows"):
        split_points(np.zeros((100, 2)), train, test, rng(0), source="f.mat:xx")


def test_a_test_set_larger_than_the_training_set_is_an_error():
    """The noise floor needs a training sample as large as the test set."""
    with pytest.raises(UserError, match="--test-size 60 is larger than --train-size 40"):
        split_points(np.zeros((100, 2)), 40, 60, rng(0))


@pytest.mark.parametrize("name", ["ring8", "grid25", "swissroll"])
def test_toy_data_is_seeded(name):
    cfg = {"data": name, "data_seed": 0, "key": "xx", "toy_size": 8192}
    points, modes, source = harness.main.load_data(cfg)
    again, _, _ = harness.main.load_data(cfg)
    other, _, _ = harness.main.load_data({**cfg, "data_seed": 1})
    assert points.shape == (8192, 2) and source == name
    assert np.array_equal(points, again) and not np.array_equal(points, other)
    if modes is None:  # the swiss roll: radius grows with the angle, from 1.5π/7.5 to 4.5π/7.5
        radius = np.linalg.norm(points, axis=1)
        assert 0.5 < radius.min() and radius.max() < 2.1
    else:  # a mixture: every point near a mode, every mode used about equally
        d = cdist(points, modes["means"])
        assert d.min(axis=1).max() < 6 * modes["std"]
        counts = np.bincount(d.argmin(axis=1), minlength=len(modes["means"]))
        assert np.abs(counts - len(points) / len(counts)).max() < 5 * np.sqrt(
            len(points) / len(counts)
        )


def test_the_ring_has_eight_distinct_evenly_spaced_modes():
    """PacGAN's 2D-ring: 8 modes 45° apart on the unit circle (a linspace(0, 2π, 8) ring, as some
    public toy code builds it, has its first and last mode on the same point: 7 distinct)."""
    means = np.array(points.TOY_DATA["ring8"]["means"])
    assert np.allclose(np.linalg.norm(means, axis=1), 1)
    gaps = cdist(means, means) + np.diag([np.inf] * 8)
    assert np.allclose(gaps.min(axis=1), 2 * np.sin(np.pi / 8))
    grid = np.array(points.TOY_DATA["grid25"]["means"])
    assert len({tuple(m) for m in grid}) == 25 and np.ptp(grid, axis=0).tolist() == [8, 8]
