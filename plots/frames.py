"""A frame of a lab5 run: the critic's landscape under the test and the generated points.

matplotlib's object API on the Agg canvas (no pyplot, no display, no global figure state), so it
runs the same in the recording process, in tests and on a machine without a screen. Everything
here works from arrays and dicts; nothing imports the training code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

TEST_COLOUR = "#1b1b1b"
FAKE_COLOUR = "#e8590c"
LANDSCAPE_SIZE = 120  # the critic is evaluated on this many points along each side of the window
PROBABILITY_SCALE = (0.0, 1.0)  # GAN's D(x): every frame on the whole range


def plot_window(points: np.ndarray, margin: float = 0.2) -> tuple[float, float, float, float]:
    """The data's bounding box with room for stray samples on every side (a fraction of its
    larger side); fixed for a whole run so that the frames of a GIF do not jump."""
    low = points.min(0)
    high = points.max(0)
    pad = (high - low).max() * margin
    return (low[0] - pad, high[0] + pad, low[1] - pad, high[1] + pad)


def landscape_grid(window, size: int = LANDSCAPE_SIZE) -> np.ndarray:
    """The size × size points, row by row from the bottom, at which a frame shows the critic."""
    xs = np.linspace(*window[:2], size)
    ys = np.linspace(*window[2:], size)
    return np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)


def frame_title(title: str, epoch: int, row: dict, floor: dict) -> str:
    if row.get("w1") is None:
        return f"{title} · epoch {epoch} · energy {row['energy']:.5f}"
    ratio = f" ({row['w1'] / floor['w1']:.1f}× noise floor)" if floor["w1"] > 0 else ""
    return f"{title} · epoch {epoch} · W1 {row['w1']:.4f}{ratio}"


def data_region(window, test_points: np.ndarray, size: int = LANDSCAPE_SIZE) -> np.ndarray:
    """Which of `landscape_grid`'s points lie in the test points' bounding box: where the
    critic's shape matters, as against the corners of the window, which set its extremes."""
    grid = landscape_grid(window, size)
    low = test_points.min(0)
    high = test_points.max(0)
    return ((grid >= low) & (grid <= high)).all(1)


def colour_range(values: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """A frame's range of the critic's values: their 2nd to the 98th percentile over the data
    region (over the window where the region is thinner than the grid's step and holds none of
    its points). Its extremes sit in the corners; its shape around the data is what a frame
    shows. A flat critic gets a range around it."""
    inside = values.ravel()[region] if region.any() else values.ravel()
    low, high = np.percentile(inside, [2, 98])
    pad = 0.0 if high > low else max(abs(low) * 1e-3, 1e-6)
    return float(low - pad), float(high + pad)


def frame_range(values: np.ndarray, region: np.ndarray, probability: bool) -> tuple:
    """The range a frame's values take on its run's colour scale: D(x)'s whole [0, 1], or a
    critic's colour_range."""
    return PROBABILITY_SCALE if probability else colour_range(values, region)


def run_scale(ranges: list[tuple[float, float]]) -> tuple[float, float]:
    """One colour scale for all of a run's frames, from the lowest of their ranges to the
    highest: a critic that has not learnt yet looks as flat as it is."""
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def critic_label(probability: bool) -> str:
    """The colour bar's label: GAN's D(x) on its whole range, or a WGAN critic's score, whose
    level means nothing (its losses use only differences), against its mean on the data."""
    if probability:
        return "D(x), the probability that x is real\n(0: fake, 1: real, ½: cannot tell)"
    return "the critic's score less its mean on the test\npoints (one colour scale for the run)"


def frame_artists(ax, window, test_points: np.ndarray) -> dict:
    """The parts of a frame that change from one to the next, drawn empty and marked animated:
    the critic's heat-map, the test points, the generated points, the title."""
    image = ax.imshow(
        np.zeros((2, 2)),
        extent=window,
        origin="lower",
        cmap="PuBuGn",
        interpolation="bilinear",
        vmin=0,
        vmax=1,
        animated=True,
    )
    # A white rim keeps the test points visible on the darkest colour of the scale; the dots are
    # large enough for it to leave them black (on smaller ones it turns them grey)
    test = ax.scatter(
        *test_points.T,
        s=12,
        c=TEST_COLOUR,
        edgecolors="white",
        linewidths=0.4,
        label="test points",
        animated=True,
    )
    fake = ax.scatter(
        [], [], s=4, c=FAKE_COLOUR, linewidths=0, label="generated points", animated=True
    )
    heading = ax.set_title(" ", animated=True)
    return {"image": image, "test": test, "fake": fake, "heading": heading}


def laid_out_colorbar(fig, ax, image, label: str):
    """The colour bar (named by `label`), with the figure's layout worked out once around it and
    the legend; its axes, marked animated (a frame may change its scale)."""
    colorbar = fig.colorbar(image, ax=ax, shrink=0.9, label=label)
    # The scale, and so its tick labels, may change every frame: the layout is worked out once
    # with room for the widest, which keeps the label where it is.
    colorbar.ax.yaxis.set_major_formatter("{x:.3g}")
    widest = colorbar.ax.yaxis.get_major_formatter()
    colorbar.ax.yaxis.set_major_formatter(lambda *_: "-8.88e+88")
    fig.legend(loc="outside lower center", ncols=2, markerscale=3, frameon=False)
    fig.canvas.draw()  # the constrained layout, worked out once
    fig.set_layout_engine("none")
    colorbar.ax.yaxis.set_major_formatter(widest)
    colorbar.ax.set_animated(True)
    return colorbar.ax


def frame_figure(window, test_points: np.ndarray, label: str) -> dict:
    """The frame's figure, laid out and drawn once without the parts that change, and the
    drawing saved to be restored under each frame (blitting)."""
    fig = Figure(figsize=(7.2, 4.4), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    parts = frame_artists(ax, window, test_points)
    ax.set(xlim=window[:2], ylim=window[2:], aspect="equal", xlabel="x", ylabel="y")
    colorbar = laid_out_colorbar(fig, ax, parts["image"], label)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    return {"fig": fig, "ax": ax, **parts, "colorbar": colorbar, "background": background}


def make_frame_writer(window, test_points: np.ndarray, label: str):
    """A function that writes one frame: the critic's landscape as a heat-map over `window`
    (values from `landscape_grid`) on a colour scale (low, high), the test points and the
    generated points, under a heading (frame_title). Only what changes is drawn for each
    frame, which is what keeps frames cheap enough to hide behind training."""
    parts = frame_figure(window, test_points, label)
    fig = parts["fig"]
    ax = parts["ax"]
    image = parts["image"]

    def write(path: Path, heading: str, fake_points: np.ndarray, values: np.ndarray, scale) -> None:
        side = int(round(np.sqrt(values.size)))
        image.set_data(values.reshape(side, side))
        image.set_clim(*scale)
        parts["fake"].set_offsets(fake_points)
        parts["heading"].set_text(heading)
        fig.canvas.restore_region(parts["background"])
        for artist in (image, parts["test"], parts["fake"], parts["heading"]):
            ax.draw_artist(artist)
        fig.draw_artist(parts["colorbar"])  # its axes, and its label, which they leave out
        fig.draw_artist(parts["colorbar"].yaxis.label)
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        # Fast PNG compression: the frames are an intermediate for the GIF, not an archive.
        Image.fromarray(pixels).save(path, format="png", compress_level=1)

    return write
