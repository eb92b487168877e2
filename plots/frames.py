"""Pictures of a lab5 run: a frame per saved epoch, and the curves of its metrics.

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

TEST_COLOUR, FAKE_COLOUR = "#1b1b1b", "#e8590c"
LANDSCAPE_SIZE = 120  # the critic is evaluated on this many points along each side of the window


def plot_window(points: np.ndarray, margin: float = 0.2) -> tuple[float, float, float, float]:
    """The data's bounding box with room for stray samples on every side (a fraction of its
    larger side); fixed for a whole run so that the frames of a GIF do not jump."""
    low, high = points.min(0), points.max(0)
    pad = (high - low).max() * margin
    return (low[0] - pad, high[0] + pad, low[1] - pad, high[1] + pad)


def landscape_grid(window, size: int = LANDSCAPE_SIZE) -> np.ndarray:
    """The size × size points, row by row from the bottom, at which a frame shows the critic."""
    xs, ys = np.linspace(*window[:2], size), np.linspace(*window[2:], size)
    return np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)


def frame_title(title: str, epoch: int, row: dict, floor: dict) -> str:
    if row.get("w1") is None:
        return f"{title} · epoch {epoch} · energy {row['energy']:.5f}"
    ratio = f" ({row['w1'] / floor['w1']:.1f}× noise floor)" if floor["w1"] > 0 else ""
    return f"{title} · epoch {epoch} · W1 {row['w1']:.4f}{ratio}"


def frame_figure(window, test_points: np.ndarray, probability: bool) -> dict:
    """The frame's figure, laid out and drawn once without the parts that change (marked
    animated), and the drawing saved to be restored under each frame (blitting)."""
    fig = Figure(figsize=(7.2, 4.4), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.zeros((2, 2)), extent=window, origin="lower", cmap="PuBuGn",
                      interpolation="bilinear", vmin=0, vmax=1, animated=True)
    test = ax.scatter(*test_points.T, s=3, c=TEST_COLOUR, linewidths=0, label="test points",
                      animated=True)
    fake = ax.scatter([], [], s=3, c=FAKE_COLOUR, linewidths=0, label="generated points",
                      animated=True)
    heading = ax.set_title(" ", animated=True)
    ax.set(xlim=window[:2], ylim=window[2:], aspect="auto", xlabel="x", ylabel="y")
    label = "D(x): probability of real" if probability else "critic value"
    colorbar = fig.colorbar(image, ax=ax, shrink=0.85, label=label)
    # A critic's scale, and so its tick labels, change every frame: the layout is worked out
    # once with room for the widest, which keeps the label where it is.
    colorbar.ax.yaxis.set_major_formatter("{x:.3g}" if not probability else "{x:.1f}")
    widest = colorbar.ax.yaxis.get_major_formatter()
    colorbar.ax.yaxis.set_major_formatter(lambda *_: "-8.88e+88")
    fig.legend(loc="outside lower center", ncols=2, markerscale=4, frameon=False)
    fig.canvas.draw()  # the constrained layout, worked out once
    fig.set_layout_engine("none")
    colorbar.ax.yaxis.set_major_formatter(widest)
    colorbar.ax.set_animated(not probability)  # a critic's scale, and so its ticks, change
    fig.canvas.draw()
    return {"fig": fig, "ax": ax, "image": image, "test": test, "fake": fake,
            "heading": heading, "colorbar": colorbar.ax,
            "background": fig.canvas.copy_from_bbox(fig.bbox)}


def make_frame_writer(window, test_points: np.ndarray, title: str, probability: bool):
    """A function that writes one frame: the critic's landscape as a heat-map over `window`
    (values from `landscape_grid`), the test points and the generated points, with the epoch
    and the distance in the title. Only what changes is drawn for each frame, which is what
    keeps frames cheap enough to hide behind training."""
    parts = frame_figure(window, test_points, probability)
    fig, ax, image = parts["fig"], parts["ax"], parts["image"]

    def write(path: Path, epoch: int, fake_points: np.ndarray, values: np.ndarray, row: dict,
              floor: dict) -> None:
        side = int(round(np.sqrt(values.size)))
        image.set_data(values.reshape(side, side))
        if not probability:  # a critic's values drift freely over training: scale each frame
            image.set_clim(values.min(), values.max())
        parts["fake"].set_offsets(fake_points)
        parts["heading"].set_text(frame_title(title, epoch, row, floor))
        fig.canvas.restore_region(parts["background"])
        for artist in (image, parts["test"], parts["fake"], parts["heading"]):
            ax.draw_artist(artist)
        if not probability:  # the colour bar's axes, and its label, which they leave out
            fig.draw_artist(parts["colorbar"])
            fig.draw_artist(parts["colorbar"].yaxis.label)
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        # Fast PNG compression: the frames are an intermediate for the GIF, not an archive.
        Image.fromarray(pixels).save(path, format="png", compress_level=1)

    return write


def plot_curves(rows: list[dict], floor: dict | None, title: str, path: Path) -> None:
    """Losses and distances per epoch, the distances against the noise floor (what a perfect
    generator would score). A value missing in a row (None) is left out of its curve."""
    fig = Figure(figsize=(10, 3.8), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    losses, distances = fig.subplots(1, 2)

    def curve(key: str) -> tuple[list, list]:
        points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
        return [e for e, _ in points], [v for _, v in points]

    for key in ("g_loss", "d_loss", "penalty"):
        if curve(key)[0]:
            losses.plot(*curve(key), label=key, lw=1.2)
    losses.set(title=f"{title}: losses", xlabel="epoch")
    losses.legend()
    for key, style in (("w1", "o-"), ("energy", "-")):
        if curve(key)[0]:
            line, = distances.plot(*curve(key), style, ms=3, lw=1.2, label=key)
            if floor and key in floor:
                distances.axhline(floor[key], color=line.get_color(), ls=":", lw=1,
                                  label=f"{key} noise floor")
    distances.set(title=f"{title}: distance to the test set", xlabel="epoch", yscale="log")
    distances.legend()
    fig.savefig(path)
