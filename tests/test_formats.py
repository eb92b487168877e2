"""Points from any common file: .mat, .npy, .npz, and text (.csv, .tsv, .txt: two numeric
columns, a header row, comments, the delimiter found or given). Each format gets the same
validation and one-line errors; a file of any size trains with the default --train-size."""

import json
import re

import numpy as np
import pytest
import scipy.io

from data.points import load_points
from errors import UserError
from harness.main import main

POINTS = np.array([[0.5, -1.25], [2.0, 3.0], [-4.5, 0.125], [1e-3, 7.0]])


def made(name, write):
    """A function of a folder that writes a file there with `write` and returns its path."""

    def make(folder):
        write(folder / name)
        return folder / name

    return make


def text(name, body):
    return made(name, lambda path: path.write_text(body))


def npy(name, array):
    return made(name, lambda path: np.save(path, array))


def npz(name, **arrays):
    return made(name, lambda path: np.savez(path, **arrays))


def mat(name, **arrays):
    return made(name, lambda path: scipy.io.savemat(path, arrays))


GOOD = {
    "mat": (mat("p.mat", xx=POINTS), {}),
    "npy": (npy("p.npy", POINTS), {}),
    "npz-only-array": (npz("p.npz", points=POINTS), {}),
    "npz-key": (npz("p.npz", a=POINTS, b=np.zeros(3)), {"key": "a"}),
    "csv-header": (text("p.csv", "x,y\n0.5,-1.25\n2,3\n-4.5,0.125\n1e-3,7\n"), {}),
    "csv-comments-spaces": (
        text("p.csv", "# points\nx, y\n0.5, -1.25 # first\n\n2, 3\n-4.5, 0.125\n1e-3, 7\n"),
        {},
    ),
    "tsv": (text("p.tsv", "0.5\t-1.25\n2\t3\n-4.5\t0.125\n1e-3\t7\n"), {}),
    "txt-spaces": (text("p.txt", "0.5  -1.25\n2 3\n  -4.5 0.125\n1e-3\t7\n"), {}),
    "txt-found-semicolon": (text("p.txt", "x;y\n0.5;-1.25\n2;3\n-4.5;0.125\n1e-3;7\n"), {}),
    "csv-given-semicolon": (
        text("p.csv", "0.5;-1.25\n2;3\n-4.5;0.125\n1e-3;7\n"),
        {"delimiter": ";"},
    ),
    "txt-given-tab": (
        text("p.txt", "x\ty\n0.5\t-1.25\n2\t3\n-4.5\t0.125\n1e-3\t7\n"),
        {"delimiter": "tab"},
    ),
}


@pytest.mark.parametrize("case", GOOD)
def test_every_format_reads_the_same_points(tmp_path, case):
    make, options = GOOD[case]
    points, where = load_points(make(tmp_path), **options)
    assert points.dtype == np.float64 and np.array_equal(points, POINTS), points


BAD = {  # per format: wrong shape, NaN/Inf, not numbers (the row named), empty, too few
    "mat-shape": (mat("p.mat", xx=np.zeros((4, 3))), "has shape 4×3; expected N×2"),
    "mat-nan": (
        mat("p.mat", xx=np.array([[0, 1], [np.inf, 2.0]])),
        "1 rows with NaN or Inf (first: row 2)",
    ),
    "mat-text": (mat("p.mat", xx=np.array(["ab", "cd"])), "is not a numeric array"),
    "mat-empty": (mat("p.mat", xx=np.zeros((0, 2))), "holds 0 points"),
    "mat-one": (mat("p.mat", xx=np.ones((5, 2))), "holds 5 points and fewer than two distinct"),
    "npy-shape": (npy("p.npy", np.zeros(8)), "has shape 8; expected N×2"),
    "npy-nan": (npy("p.npy", np.array([[0, 1], [2, 3], [np.nan, 1]])), "(first: row 3)"),
    "npy-text": (npy("p.npy", np.array([["a", "b"]])), "is not a numeric array"),
    "npy-objects": (
        npy("p.npy", np.array([[1, None]], dtype=object)),
        "is not a NumPy .npy file of numbers",
    ),
    "npy-empty": (npy("p.npy", np.zeros((0, 2))), "holds 0 points"),
    "npy-one": (npy("p.npy", np.ones((1, 2))), "holds 1 point and fewer than two distinct"),
    "npy-not": (text("p.npy", "hello"), "is not a NumPy .npy file"),
    "npz-several": (
        npz("p.npz", a=POINTS, b=POINTS),
        "has 2 arrays; it has: a, b (choose with --key)",
    ),
    "npz-no-key": (npz("p.npz", a=POINTS), "has no array 'zz'; it has: a"),
    "npz-shape": (npz("p.npz", a=np.zeros((2, 2, 2))), "has shape 2×2×2"),
    "npz-nan": (npz("p.npz", a=np.array([[0, np.inf], [1, 2]])), "(first: row 1)"),
    "npz-empty": (npz("p.npz"), "has 0 arrays; it has: none"),
    "npz-not": (text("p.npz", "hello"), "is not a NumPy .npz file"),
    "csv-cell": (text("p.csv", "x,y\n1,2\n3,four\n"), "line 3: 'four' is not a number"),
    "csv-columns": (text("p.csv", "1,2\n3,4,5\n"), "line 2 has 3 columns; expected two"),
    "csv-one-column": (text("p.csv", "x\n1\n2\n"), "line 2 has 1 columns; expected two"),
    "csv-nan": (text("p.csv", "1,2\n# note\nnan,4\n"), "line 3 has NaN or Inf"),
    "csv-inf": (text("p.csv", "1,2\n3,-inf\n"), "line 2 has NaN or Inf"),
    "csv-empty": (text("p.csv", "# nothing\n\n"), "holds 0 points"),
    "csv-header-only": (text("p.csv", "x,y\n"), "holds 0 points"),
    "csv-one": (text("p.csv", "1,2\n1,2\n"), "holds 2 points and fewer than two distinct"),
    "tsv-cell": (text("p.tsv", "1\t2\n3\t?\n"), "line 2: '?' is not a number"),
    "tsv-nan": (text("p.tsv", "1\t2\n3\tnan\n"), "line 2 has NaN or Inf"),
    "tsv-shape": (text("p.tsv", "1\t2\t3\n"), "line 1 has 3 columns"),
    "tsv-empty": (text("p.tsv", ""), "holds 0 points"),
    "txt-cell": (text("p.txt", "1 2\n3 4\nfive 6\n"), "line 3: 'five' is not a number"),
    "txt-nan": (text("p.txt", "1 2\ninf 4\n"), "line 2 has NaN or Inf"),
    "txt-shape": (text("p.txt", "1 2\n3\n"), "line 2 has 1 columns"),
    "txt-binary": (
        made("p.txt", lambda path: path.write_bytes(b"\xff\xfe\x00")),
        "is not a text file",
    ),
    "txt-one": (text("p.txt", "3 4\n"), "holds 1 point and fewer than two distinct"),
    "unknown-suffix": (text("p.json", "[[1, 2]]"), "cannot read '.json' files; expected .mat"),
}


@pytest.mark.parametrize("case", BAD)
def test_every_format_s_bad_input_is_a_one_line_error(tmp_path, case):
    make, expected = BAD[case]
    path = make(tmp_path)
    key = "zz" if case == "npz-no-key" else None
    with pytest.raises(UserError, match=re.escape(expected)) as err:
        load_points(path, key)
    assert "\n" not in str(err.value) and path.name in str(err.value)


def test_a_small_csv_trains_with_the_default_sizes_and_its_format_is_recorded(tmp_path, capsys):
    """3000 points: the default --train-size is the report's fraction, 7000/8192 of them."""
    rng = np.random.default_rng(0)
    path = tmp_path / "small.csv"
    np.savetxt(path, rng.normal(size=(3000, 2)), delimiter=",", header="x,y")
    out = tmp_path / "run"
    argv = [
        "--data",
        str(path),
        *"--epochs 1 --no-compile --frame-every 0".split(),
        "--out",
        str(out),
    ]
    assert main("gan", argv) == 0
    assert "data: 2563 train / 437 test points" in capsys.readouterr().out  # round(3000·0.854)
    config = json.loads((out / "config.json").read_text())
    assert config["data_format"] == "csv" and len(config["data_sha256"]) == 64
    assert (config["train_points"], config["test_points"]) == (2563, 437)


@pytest.mark.parametrize(
    "train,test,expected",
    [
        (["0.5"], ["0.25"], "data: 50 train / 25 test points"),
        (["60"], ["0.2"], "data: 60 train / 20 test points"),
        (["0.9"], [], "data: 90 train / 10 test points"),
    ],
)
def test_sizes_are_counts_or_fractions(tmp_path, capsys, train, test, expected):
    path = tmp_path / "p.npy"
    np.save(path, np.random.default_rng(0).normal(size=(100, 2)))
    argv = [
        *["--data", str(path), "--out", str(tmp_path / "run")],
        *"--batch-size 8 --epochs 1 --no-compile --frame-every 0".split(),
        "--train-size",
        *train,
        *(["--test-size", *test] if test else []),
    ]
    assert main("gan", argv) == 0
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--train-size", "1.5"),
        ("--train-size", "0"),
        ("--train-size", "-0.5"),
        ("--test-size", "1.0"),
        ("--train-size", "half"),
    ],
)
def test_a_size_that_is_neither_is_a_one_line_error(capsys, flag, value):
    assert main("gan", [flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and flag in err
