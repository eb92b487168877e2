"""Pictures of a lab5 run: a frame per saved epoch, and the curves of its metrics.

matplotlib's object API on the Agg canvas (no pyplot, no display, no global figure state), so it
runs the same in the training process, in tests and on a machine without a screen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

TEST_COLOUR, FAKE_COLOUR = "#1b1b1b", "#e8590c"


def make_frame_writer(window, test_points: np.ndarray, title: str, probability: bool):
    """A function that writes one frame: the critic's landscape as a heat-map over `window`, the
    test points and the generated points, with the epoch and distance in the title.

    The figure is made once and each frame only swaps its data, which is several times faster
    than drawing a new figure and keeps frame writing a small part of training time."""
    fig = Figure(figsize=(7.2, 4.4), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.zeros((2, 2)), extent=window, origin="lower", cmap="PuBuGn",
                      interpolation="bilinear", vmin=0, vmax=1)
    ax.scatter(test_points[:, 0], test_points[:, 1], s=3, c=TEST_COLOUR, linewidths=0, label="test points")
    fake = ax.scatter([], [], s=3, c=FAKE_COLOUR, linewidths=0, label="generated points")
    ax.set(xlim=window[:2], ylim=window[2:], aspect="auto", xlabel="x", ylabel="y")
    fig.colorbar(image, ax=ax, shrink=0.85, label="D(x): probability of real" if probability else "critic value")
    fig.legend(loc="outside lower center", ncols=2, markerscale=4, frameon=False)

    def write(path: Path, epoch: int, fake_points: np.ndarray, values: np.ndarray, row: dict, floor: dict) -> None:
        image.set_data(values)
        if not probability:  # a critic's values drift freely over training: scale each frame
            image.set_clim(values.min(), values.max())
        fake.set_offsets(fake_points)
        if row["w1"] == "":
            distance = f"energy {row['energy']:.5f}"
        else:
            distance = f"W1 {row['w1']:.4f}" + (f" ({row['w1'] / floor['w1']:.1f}× noise floor)" if floor["w1"] > 0 else "")
        ax.set_title(f"{title} · epoch {epoch} · {distance}")
        # Fast PNG compression: the frames are an intermediate for the GIF, not an archive.
        fig.savefig(path, format="png", pil_kwargs={"compress_level": 1})
        # The layout only needed working out once; redoing it for every frame costs more than
        # drawing the frame.
        fig.set_layout_engine("none")

    return write


def plot_curves(rows: list[dict], floor: dict | None, title: str, path: Path) -> None:
    """Losses and distances per epoch, the distances against the noise floor (what a perfect
    generator would score)."""
    fig = Figure(figsize=(10, 3.8), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    losses, distances = fig.subplots(1, 2)
    epochs = lambda key: [r["epoch"] for r in rows if r.get(key, "") != ""]  # noqa: E731
    values = lambda key: [r[key] for r in rows if r.get(key, "") != ""]  # noqa: E731
    for key in ("g_loss", "d_loss", "penalty"):
        if values(key):
            losses.plot(epochs(key), values(key), label=key, lw=1.2)
    losses.set(title=f"{title}: losses", xlabel="epoch")
    losses.legend()
    for key, style in (("w1", "o-"), ("energy", "-")):
        if values(key):
            line, = distances.plot(epochs(key), values(key), style, ms=3, lw=1.2, label=key)
            if floor and key in floor:
                distances.axhline(floor[key], color=line.get_color(), ls=":", lw=1, label=f"{key} noise floor")
    distances.set(title=f"{title}: distance to the test set", xlabel="epoch", yscale="log")
    distances.legend()
    fig.savefig(path)
