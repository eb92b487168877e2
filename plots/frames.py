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


def data_region(window, test_points: np.ndarray, size: int = LANDSCAPE_SIZE) -> np.ndarray:
    """Which of `landscape_grid`'s points lie in the test points' bounding box: where the
    critic's shape matters, as against the corners of the window, which set its extremes."""
    grid, low, high = landscape_grid(window, size), test_points.min(0), test_points.max(0)
    return ((grid >= low) & (grid <= high)).all(1)


def colour_range(values: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """A frame's colour scale: the 2nd to the 98th percentile of the values over the data
    region (over the window where the region is thinner than the grid's step and holds none of
    its points). The critic's level drifts freely over training and its extremes sit in the
    corners; its shape around the data is what a frame shows. A flat critic gets a scale
    around it."""
    inside = values.ravel()[region] if region.any() else values.ravel()
    low, high = np.percentile(inside, [2, 98])
    pad = 0.0 if high > low else max(abs(low) * 1e-3, 1e-6)
    return float(low - pad), float(high + pad)


def frame_figure(window, test_points: np.ndarray, probability: bool) -> dict:
    """The frame's figure, laid out and drawn once without the parts that change (marked
    animated), and the drawing saved to be restored under each frame (blitting)."""
    fig = Figure(figsize=(7.2, 4.4), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.zeros((2, 2)), extent=window, origin="lower", cmap="PuBuGn",
                      interpolation="bilinear", vmin=0, vmax=1, animated=True)
    # White rims keep the test points visible on the darkest colour of the scale
    test = ax.scatter(*test_points.T, s=5, c=TEST_COLOUR, edgecolors="white", linewidths=0.4,
                      label="test points", animated=True)
    fake = ax.scatter([], [], s=4, c=FAKE_COLOUR, linewidths=0, label="generated points",
                      animated=True)
    heading = ax.set_title(" ", animated=True)
    ax.set(xlim=window[:2], ylim=window[2:], aspect="equal", xlabel="x", ylabel="y")
    label = "D(x): probability of real" if probability else "critic value"
    colorbar = fig.colorbar(image, ax=ax, shrink=0.9, label=f"{label}, 2–98 % over the data")
    # The scale, and so its tick labels, change every frame: the layout is worked out once
    # with room for the widest, which keeps the label where it is.
    colorbar.ax.yaxis.set_major_formatter("{x:.3g}")
    widest = colorbar.ax.yaxis.get_major_formatter()
    colorbar.ax.yaxis.set_major_formatter(lambda *_: "-8.88e+88")
    fig.legend(loc="outside lower center", ncols=2, markerscale=3, frameon=False)
    fig.canvas.draw()  # the constrained layout, worked out once
    fig.set_layout_engine("none")
    colorbar.ax.yaxis.set_major_formatter(widest)
    colorbar.ax.set_animated(True)
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
    region = data_region(window, test_points)

    def write(path: Path, epoch: int, fake_points: np.ndarray, values: np.ndarray, row: dict,
              floor: dict) -> None:
        side = int(round(np.sqrt(values.size)))
        image.set_data(values.reshape(side, side))
        image.set_clim(*colour_range(values, region))
        parts["fake"].set_offsets(fake_points)
        parts["heading"].set_text(frame_title(title, epoch, row, floor))
        fig.canvas.restore_region(parts["background"])
        for artist in (image, parts["test"], parts["fake"], parts["heading"]):
            ax.draw_artist(artist)
        fig.draw_artist(parts["colorbar"])  # its axes, and its label, which they leave out
        fig.draw_artist(parts["colorbar"].yaxis.label)
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        # Fast PNG compression: the frames are an intermediate for the GIF, not an archive.
        Image.fromarray(pixels).save(path, format="png", compress_level=1)

    return write


def series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, values and standard errors of a column, from a run's metrics.csv (errors 0) or
    an ensemble's ensemble.csv (`key`_mean, `key`_se); rows without a value are left out."""
    mean, se = (f"{key}_mean", f"{key}_se") if rows and f"{key}_mean" in rows[0] else (key, key)
    kept = [(r["epoch"], r[mean], r[se] if se != key else 0.0) for r in rows
            if r.get(mean) is not None]
    return tuple(np.array(column, float).reshape(-1) for column in zip(*kept)) if kept else \
        (np.zeros(0),) * 3


def draw_series(ax, rows: list[dict], members: list[list[dict]], key: str, label: str,
                style: str = "-", color: str | None = None) -> str | None:
    """A column's curve with its ±1 s.e. band, over each member's own curve drawn faint;
    returns the curve's colour (None: the column has no values)."""
    epochs, values, se = series(rows, key)
    if not len(epochs):
        return None
    line, = ax.plot(epochs, values, style, ms=3, lw=1.4, label=label, color=color)
    ax.fill_between(epochs, values - se, values + se, lw=0, alpha=0.25, color=line.get_color())
    for member in members:
        member_epochs, member_values, _ = series(member, key)
        ax.plot(member_epochs, member_values, lw=0.6, alpha=0.3, color=line.get_color())
    return line.get_color()


def draw_losses(ax, rows: list[dict], members: list[list[dict]]) -> None:
    """The losses; the gradient penalty, unweighted, on an axis of its own (log scale): it
    starts near 100 while the losses move within a few units, and its weight can differ
    between members (--vary) or epochs (--anneal)."""
    for key in ("g_loss", "d_loss"):
        draw_series(ax, rows, members, key, key)
    handles, labels = ax.get_legend_handles_labels()
    if len(series(rows, "penalty")[0]):
        right = ax.twinx()
        draw_series(right, rows, members, "penalty", "penalty, unweighted (right)",
                    color="tab:green")
        right.set(yscale="log", ylabel="gradient penalty E[(‖∇D(x̂)‖ − 1)²]")
        handles, labels = [a + b for a, b in zip((handles, labels),
                                                   right.get_legend_handles_labels())]
    ax.legend(handles, labels, fontsize="small")


def plot_curves(rows: list[dict], members: list[list[dict]], config: dict, summary: dict,
                title: str, path: Path) -> None:
    """Losses and distances per epoch (an ensemble's mean ± s.e., its members faint beneath),
    the distances against the noise floor (what a perfect generator would score) and the fit
    threshold, on a log scale."""
    fig = Figure(figsize=(10, 3.8), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    losses, distances = fig.subplots(1, 2)
    draw_losses(losses, rows, members)
    losses.set(title=f"{title}: losses", xlabel="epoch")
    floor, factor = summary.get("noise_floor") or {}, config.get("fit_factor", 2.0)
    for key, style in (("w1", "o-"), ("energy", "-")):
        colour = draw_series(distances, rows, members, key, key, style=style)
        if key in floor and colour:
            distances.axhline(floor[key], color=colour, ls=":", lw=1, label=f"{key} noise floor")
    if "w1" in floor:
        distances.axhline(factor * floor["w1"], color="0.3", ls="--", lw=1,
                          label=f"fitted: {factor:g}× the W1 floor")
    distances.set(title=f"{title}: distance to the test set", xlabel="epoch", yscale="log")
    distances.legend(fontsize="small")
    fig.savefig(path)
