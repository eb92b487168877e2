"""Frames, GIFs and curves from a real (short) run folder."""

import numpy as np
import pytest
from PIL import Image

import lab5
from plots import make_gifs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for variant in ("gan", "wgan_gp"):
        assert lab5.main(variant, ["--train-size", "512", "--test-size", "128", "--batch-size", "64", "--epochs", "4",
                                   "--frame-every", "1", "--no-compile", "--out", str(root / variant)]) == 0
    return root


def test_make_gifs_turns_every_run_into_a_gif_and_curves(runs, capsys):
    assert make_gifs.main(["--root", str(runs)]) == 0
    for name in ("gan", "wgan_gp"):
        gif = Image.open(runs / f"{name}.gif")
        assert gif.n_frames == len(list((runs / name / "frames").glob("*.png"))) == 5
        first_frame = Image.open(runs / name / "frames" / "epoch_0000.png")
        assert gif.size == first_frame.size
        assert Image.open(runs / name / "curves.png").size[0] > 0
    assert "wgan_gp.gif" in capsys.readouterr().out


def test_frames_differ_from_epoch_to_epoch(runs):
    frames = [np.asarray(Image.open(p)) for p in sorted((runs / "gan" / "frames").glob("*.png"))]
    assert all(a.shape == frames[0].shape for a in frames)  # one window, one size: the GIF does not jump
    assert all(not np.array_equal(a, b) for a, b in zip(frames, frames[1:]))


def test_no_runs_is_a_one_line_error(tmp_path, capsys):
    assert make_gifs.main(["--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: no run folder")


def test_window_holds_every_point_with_the_same_margin_on_each_side():
    points = np.random.default_rng(0).normal(size=(500, 2)) * [3, 1]
    x0, x1, y0, y1 = lab5.plot_window(points, margin=0.1)
    pad = 0.1 * np.ptp(points[:, 0])  # the larger side is x
    assert (x0, x1, y0, y1) == pytest.approx((points[:, 0].min() - pad, points[:, 0].max() + pad,
                                              points[:, 1].min() - pad, points[:, 1].max() + pad))


def test_scale_resizes_the_gif(runs):
    assert make_gifs.main([str(runs / "gan"), "--scale", "0.5"]) == 0
    full = Image.open(runs / "gan" / "frames" / "epoch_0000.png").size
    assert Image.open(runs / "gan.gif").size == (round(full[0] * 0.5), round(full[1] * 0.5))
