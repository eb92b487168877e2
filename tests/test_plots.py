"""Frames, GIFs and curves from a real (short) run folder."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

import lab5
from harness.main import load_data, main, split_data
from harness.run_folder import frame_arrays
from plots import make_gifs
from plots.frames import (
    PROBABILITY_SCALE,
    colour_range,
    critic_label,
    data_region,
    frame_figure,
    frame_title,
    landscape_grid,
    make_frame_writer,
    plot_window,
    run_scale,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for variant in ("gan", "wgan_gp"):
        assert (
            main(
                variant,
                [
                    *(
                        "--train-size 512 --test-size 128 --batch-size 64 --epochs 4 "
                        "--frame-every 1 --no-compile --out"
                    ).split(),
                    str(root / variant),
                ],
            )
            == 0
        )
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


def test_frames_are_one_size_so_the_gif_does_not_jump(runs):
    sizes = {Image.open(p).size for p in (runs / "gan" / "frames").glob("*.png")}
    assert len(sizes) == 1


def draw(tmp_path, name, fake, values, w1=0.1):
    window = (0.0, 1.0, 0.0, 1.0)
    test = np.random.default_rng(0).random((50, 2))
    write = make_frame_writer(window, test, critic_label(probability=True))
    heading = frame_title("GAN", 7, {"w1": w1, "energy": 0.01}, {"w1": 0.05})
    write(tmp_path / name, heading, fake, values, (0.0, 1.0))
    return np.asarray(Image.open(tmp_path / name))


def test_a_frame_shows_its_points_and_landscape_and_nothing_else_changes_it(tmp_path):
    rng = np.random.default_rng(1)
    fake = rng.random((50, 2))
    values = rng.random((120, 120))
    base = draw(tmp_path, "a.png", fake, values)
    assert np.array_equal(base, draw(tmp_path, "b.png", fake, values))  # same inputs, same picture
    assert not np.array_equal(base, draw(tmp_path, "c.png", fake + 0.2, values))  # the points moved
    assert not np.array_equal(base, draw(tmp_path, "d.png", fake, 1 - values))  # the critic changed


def test_an_unreadable_frame_is_skipped_not_fatal(runs, tmp_path, capsys):
    run = shutil.copytree(runs / "wgan_gp", tmp_path / "wgan_gp")
    frames = sorted((run / "frames").glob("*.png"))
    frames[1].write_bytes(frames[1].read_bytes()[:100])  # as a crash mid-write would have left it
    assert make_gifs.main([str(run)]) == 0
    assert Image.open(tmp_path / "wgan_gp.gif").n_frames == len(frames) - 1
    assert "warning: skipping" in capsys.readouterr().err


def test_no_runs_is_a_one_line_error(tmp_path, capsys):
    assert make_gifs.main(["--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: no run folder")


def test_window_holds_every_point_with_the_same_margin_on_each_side():
    points = np.random.default_rng(0).normal(size=(500, 2)) * [3, 1]
    x0, x1, y0, y1 = plot_window(points, margin=0.1)
    pad = 0.1 * np.ptp(points[:, 0])  # the larger side is x
    assert (x0, x1, y0, y1) == pytest.approx(
        (
            points[:, 0].min() - pad,
            points[:, 0].max() + pad,
            points[:, 1].min() - pad,
            points[:, 1].max() + pad,
        )
    )


def test_scale_resizes_the_gif(runs):
    assert make_gifs.main([str(runs / "gan"), "--scale", "0.5"]) == 0
    full = Image.open(runs / "gan" / "frames" / "epoch_0000.png").size
    assert Image.open(runs / "gan.gif").size == (round(full[0] * 0.5), round(full[1] * 0.5))


def test_a_run_with_one_frame_gets_a_one_frame_gif_and_the_others_are_still_made(
    runs, tmp_path, capsys
):
    """A run interrupted early has one frame: its GIF is one frame (Pillow once crashed on it),
    and a run whose GIF cannot be made at all is skipped, with no broken file left behind."""
    one = shutil.copytree(runs / "gan", tmp_path / "a_one")
    for frame in sorted((one / "frames").glob("*.png"))[1:]:
        frame.unlink()
    broken = shutil.copytree(runs / "gan", tmp_path / "b_broken")
    frame = broken / "frames" / "epoch_0002.png"
    Image.open(frame).resize((50, 40)).save(frame)  # frames of two sizes make no GIF
    after = shutil.copytree(runs / "wgan_gp", tmp_path / "c_after")
    assert make_gifs.main(["--root", str(tmp_path)]) == 0
    assert Image.open(tmp_path / "a_one.gif").n_frames == 1
    assert (
        "warning: skipping" in capsys.readouterr().err and not (tmp_path / "b_broken.gif").exists()
    )
    assert Image.open(tmp_path / "c_after.gif").n_frames == 5 and (after / "curves.png").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_an_ensemble_folder_is_looked_into(tmp_path, capsys):
    out = tmp_path / "ens"
    assert (
        main(
            "wgan",
            [
                *(
                    "--train-size 512 --test-size 128 --batch-size 64 --epochs 2 --frame-every 1 "
                    "--no-compile --seeds 2 --out"
                ).split(),
                str(out),
            ],
        )
        == 0
    )
    assert make_gifs.main([str(out)]) == 0
    assert Image.open(out / "seed0.gif").n_frames == Image.open(out / "seed1.gif").n_frames == 3


@pytest.mark.parametrize("low,high", [(0, 1), (-0.0123, 0.0456), (-150, 150), (-2e4, 3e5)])
def test_the_colour_bar_label_stays_on_the_figure_at_any_scale(low, high):
    """A critic's colour bar is redrawn every frame with tick labels as wide as its scale needs;
    the layout keeps room for them, so its label is never pushed off the figure."""
    test = np.random.default_rng(0).random((50, 2))
    parts = frame_figure((0.0, 1.0, 0.0, 1.0), test, critic_label(probability=False))
    parts["image"].set_clim(low, high)
    parts["fig"].draw_artist(parts["colorbar"])  # as every frame does
    renderer = parts["fig"].canvas.get_renderer()
    label = parts["colorbar"].yaxis.label.get_window_extent(renderer)
    ticks = [t.get_window_extent(renderer) for t in parts["colorbar"].get_yticklabels()]
    assert label.x1 <= parts["fig"].bbox.x1 and all(t.x1 <= label.x0 for t in ticks if t.width)


def test_the_same_command_twice_keeps_both_runs_and_gifs(tmp_path, monkeypatch, capsys):
    """python variants/gan.py && python plots/make_gifs.py, twice, in a fresh folder: two run
    folders named by the variant and the flags given, the second numbered (and said so), two
    GIFs, nothing overwritten."""
    monkeypatch.chdir(tmp_path)
    argv = (
        "--train-size 512 --test-size 128 --batch-size 64 --epochs 2 --frame-every 1 --no-compile"
    ).split()
    for _ in range(2):
        assert main("gan", argv) == 0 and make_gifs.main([]) == 0
    name = "gan_train-size512_test-size128_epochs2_batch-size64_no-compile_frame-every1"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        name,
        f"{name}.gif",
        f"{name}_2",
        f"{name}_2.gif",
        "index.html",
    ]
    said = capsys.readouterr().out
    assert f"(runs/{name} holds an earlier run, which is kept; --overwrite replaces it)" in said


def test_the_colour_scale_is_set_by_the_data_region_not_the_corners():
    """Corners a thousand times higher than anything near the data do not flatten it: the
    scale runs over the 2nd to 98th percentile inside the test points' box."""
    window = (-1.0, 2.0, -1.0, 2.0)
    test = np.array([[0.0, 0.0], [1.0, 1.0]])
    grid = landscape_grid(window)
    region = data_region(window, test)
    assert (grid[region] >= 0).all() and (grid[region] <= 1).all()
    assert region.sum() == pytest.approx(region.size / 9, rel=0.1)  # a third of each side
    values = np.where(region, grid[:, 0], 1000.0)  # a ramp in x inside, a wall outside
    low, high = colour_range(values, region)
    assert low == pytest.approx(0.02, abs=0.02) and high == pytest.approx(0.98, abs=0.02)
    assert colour_range(np.full(grid.shape[0], 3.0), region)[0] < 3.0  # flat: still a scale
    thin = data_region(window, np.array([[0.0, 0.5], [1.0, 0.5]]))  # between two grid rows
    assert not thin.any() and colour_range(grid[:, 1], thin) == pytest.approx(
        (-0.94, 1.94), abs=0.01
    )


def test_frames_have_equal_scales_and_visible_test_points(tmp_path):
    """A unit of x is as long as a unit of y on the frame, and test points on the darkest
    colour of the scale are ringed in white."""
    window = (0.0, 4.0, 0.0, 1.0)
    rng = np.random.default_rng(0)
    test = rng.random((200, 2)) * [4, 1]
    parts = frame_figure(window, test, critic_label(probability=False))
    box = parts["ax"].get_window_extent()
    assert box.width / box.height == pytest.approx(4.0, rel=0.02)
    grid = landscape_grid(window)
    values = np.where(grid[:, 0] < 0.3, 0.0, 1.0)  # the darkest colour nearly everywhere
    write = make_frame_writer(window, test, critic_label(probability=False))
    write(
        tmp_path / "f.png", "WGAN", np.zeros((0, 2)), values, colour_range(values, grid[:, 0] > -1)
    )
    pixels = np.asarray(Image.open(tmp_path / "f.png").convert("RGB")).astype(int)
    height = pixels.shape[0]
    inside = pixels[
        round(height - box.y1) + 2 : round(height - box.y0) - 2,
        round(box.x0) + round(0.1 * box.width) : round(box.x1) - 2,
    ]
    brightness = inside.sum(-1)  # of 765
    assert (brightness < 150).mean() > 0.8  # the darkest colour, as meant
    assert (brightness > 450).mean() > 0.005  # the rims: without them, none


def test_make_gifs_keeps_what_is_newer_than_its_frames_and_remakes_the_rest(runs, tmp_path, capsys):
    """Run again with nothing new, every GIF, curves and compare.gif is kept, untouched; a new
    frame, --force or another --scale makes them again."""
    root = tmp_path / "runs"
    shutil.copytree(runs, root)
    for run in ("gan", "wgan_gp"):  # make_gifs over the copy, as a user's runs/ would be
        (root / f"{run}.gif").unlink(missing_ok=True)
    summaries = [root / r / "summary.json" for r in ("gan", "wgan_gp")]
    for summary in summaries:  # the newest runs, so that compare.gif shows these two
        summary.write_text(summary.read_text())
    assert make_gifs.main(["--root", str(root)]) == 0
    made = {p: p.stat().st_mtime_ns for p in [*root.glob("*.gif"), *root.glob("*/curves.png")]}
    assert len(made) == 5  # two GIFs, two curves, compare.gif
    capsys.readouterr()
    assert make_gifs.main(["--root", str(root)]) == 0
    assert capsys.readouterr().out.count("up to date") == 3
    assert {p: p.stat().st_mtime_ns for p in made} == made
    frame = root / "gan" / "frames" / "epoch_0004.png"
    frame.write_bytes(frame.read_bytes())  # a newer frame: the GAN run and compare.gif again
    assert make_gifs.main(["--root", str(root)]) == 0
    again = {p for p in made if p.stat().st_mtime_ns != made[p]}
    assert again == {root / "gan.gif", root / "gan" / "curves.png", root / "compare.gif"}
    assert make_gifs.main(["--root", str(root), "--scale", "0.5"]) == 0
    assert Image.open(root / "wgan_gp.gif").size == (324, 198)
    before = (root / "wgan_gp" / "curves.png").stat().st_mtime_ns
    assert make_gifs.main(["--root", str(root), "--scale", "0.5", "--force"]) == 0
    assert (root / "wgan_gp" / "curves.png").stat().st_mtime_ns > before


def test_a_flat_discriminator_looks_flat_on_gan_s_whole_range(tmp_path):
    """D(x) between 0.47 and 0.50 is a discriminator that cannot tell: on [0, 1] its frame is
    one colour; on its own 2nd-98th percentile (the old per-frame scale) it spans the map."""
    window = (0.0, 1.0, 0.0, 1.0)
    test = np.random.default_rng(0).random((50, 2))
    grid = landscape_grid(window)
    values = 0.47 + 0.03 * grid[:, 0]
    write = make_frame_writer(window, test, critic_label(probability=True))
    spans = {}
    for name, scale in (
        ("whole", PROBABILITY_SCALE),
        ("own", colour_range(values, grid[:, 0] > -1)),
    ):
        write(tmp_path / f"{name}.png", "GAN", np.zeros((0, 2)), values, scale)
        box = frame_figure(window, test, critic_label(True))["ax"].get_window_extent()
        pixels = np.asarray(Image.open(tmp_path / f"{name}.png").convert("RGB")).astype(int)
        height = pixels.shape[0]
        row = pixels[round(height - (box.y0 + box.y1) / 2), round(box.x0) + 3 : round(box.x1) - 3]
        tenth = len(row) // 10  # the colour at either end, by the median (a dot may be there)
        ends = np.median(row[:tenth], axis=0) - np.median(row[-tenth:], axis=0)
        spans[name] = np.abs(ends).sum()
    assert spans["whole"] < 40 and spans["own"] > 10 * spans["whole"], spans


def test_a_run_s_frames_share_one_colour_scale_and_show_the_critic_against_its_mean(tmp_path):
    """Every frame of a WGAN-GP run is on the same scale (the widest of its frames' ranges:
    the earlier ones are drawn again at the end), its colour bar pixel for pixel the same;
    each frame's landscape is the saved critic's score less its mean on the test points."""
    out = tmp_path / "run"
    flags = "--train-size 512 --test-size 128 --epochs 4 --frame-every 1 --no-compile --out"
    assert main("wgan_gp", [*flags.split(), str(out)]) == 0
    frames = frame_arrays(out)
    scales = {tuple(f["scale"]) for f in frames.values()}
    assert scales == {run_scale([tuple(f["span"]) for f in frames.values()])}
    assert len({tuple(f["span"]) for f in frames.values()}) == 5  # the ranges differed
    bars = [
        np.asarray(Image.open(p))[40:-60, -150:] for p in sorted((out / "frames").glob("*.png"))
    ]
    assert all(np.array_equal(bars[0], bar) for bar in bars[1:])
    cfg = json.loads((out / "config.json").read_text())
    points, _, source = load_data(cfg)
    train, test = split_data(cfg, points, source)
    grid = torch.as_tensor(
        landscape_grid(plot_window(np.vstack([train, test]))), dtype=torch.float32
    )
    critic = torch.load(out / "critic.pt")
    with torch.no_grad():
        expected = (
            lab5.critic(critic, grid) - lab5.critic(critic, torch.as_tensor(test).float()).mean()
        )
    np.testing.assert_allclose(frames[4]["values"], expected.numpy(), rtol=1e-5, atol=1e-6)


def block_means(pixels: np.ndarray) -> np.ndarray:
    """The mean colour of each 8 × 8 block: what the eye sees of a dithered area."""
    h = pixels.shape[0] // 8 * 8
    w = pixels.shape[1] // 8 * 8
    return pixels[:h, :w].astype(float).reshape(h // 8, 8, w // 8, 8, 3).mean((1, 3))


def test_a_gif_keeps_a_smooth_landscape_smooth_and_still_pixels_still(tmp_path):
    """Two frames of a critic rising smoothly across the window, the second with a few points
    moved. In the GIF every 8 × 8 block keeps its frame's colour within 2 of 255 (256 colours
    of the frame's own, undithered, cut the slope into bands up to 12 off), and no pixel that
    is the same in both frames differs between the GIF's two."""
    window = (0.0, 1.0, 0.0, 1.0)
    rng = np.random.default_rng(0)
    grid = landscape_grid(window)
    write = make_frame_writer(window, rng.random((50, 2)) * 0.3 + 0.35, critic_label(False))
    fake = rng.random((100, 2))
    moved = fake + np.where(np.arange(100)[:, None] < 5, 0.05, 0.0)
    for name, points in (("a.png", fake), ("b.png", moved)):
        write(tmp_path / name, "WGAN", points, grid[:, 0] + 0.3 * grid[:, 1], (0.0, 1.3))
    frames = [np.asarray(Image.open(tmp_path / name).convert("RGB")) for name in ("a.png", "b.png")]
    make_gifs.write_gif(tmp_path / "x.gif", [Image.fromarray(f) for f in frames])
    gif = [
        np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(tmp_path / "x.gif"))
    ]
    assert np.abs(block_means(gif[0]) - block_means(frames[0])).max() <= 2
    banded = Image.fromarray(frames[0]).quantize(256, method=Image.Quantize.FASTOCTREE)
    assert np.abs(block_means(np.asarray(banded.convert("RGB"))) - block_means(frames[0])).max() > 8
    still = (frames[0] == frames[1]).all(-1)
    assert still.mean() > 0.9 and ((gif[0] != gif[1]).any(-1) & still).sum() == 0
