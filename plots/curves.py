"""The curves of a lab5 run: its losses and its distances to the test set per epoch, read from
its metrics.csv (or an ensemble's ensemble.csv, its members faint beneath).

matplotlib's object API on the Agg canvas (no pyplot, no display, no global figure state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, values and standard errors of a column, from a run's metrics.csv (errors 0) or
    an ensemble's ensemble.csv (`key`_mean, `key`_se); rows without a value are left out."""
    mean, se = (f"{key}_mean", f"{key}_se") if rows and f"{key}_mean" in rows[0] else (key, key)
    kept = [
        (r["epoch"], r[mean], r[se] if se != key else 0.0) for r in rows if r.get(mean) is not None
    ]
    return (
        tuple(np.array(column, float).reshape(-1) for column in zip(*kept))
        if kept
        else (np.zeros(0),) * 3
    )


def draw_series(
    ax,
    rows: list[dict],
    members: list[list[dict]],
    key: str,
    label: str,
    style: str = "-",
    color: str | None = None,
) -> str | None:
    """A column's curve with its ±1 s.e. band, over each member's own curve drawn faint;
    returns the curve's colour (None: the column has no values)."""
    epochs, values, se = series(rows, key)
    if not len(epochs):
        return None
    (line,) = ax.plot(epochs, values, style, ms=3, lw=1.4, label=label, color=color)
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
        draw_series(
            right, rows, members, "penalty", "penalty, unweighted (right)", color="tab:green"
        )
        right.set(yscale="log", ylabel="gradient penalty E[(‖∇D(x̂)‖ − 1)²]")
        handles, labels = [
            a + b for a, b in zip((handles, labels), right.get_legend_handles_labels())
        ]
    ax.legend(handles, labels, fontsize="small")


def plot_curves(
    rows: list[dict], members: list[list[dict]], config: dict, summary: dict, title: str, path: Path
) -> None:
    """Losses and distances per epoch (an ensemble's mean ± s.e., its members faint beneath),
    the distances against the noise floor (what a perfect generator would score) and the fit
    threshold, on a log scale."""
    fig = Figure(figsize=(10, 3.8), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    losses, distances = fig.subplots(1, 2)
    draw_losses(losses, rows, members)
    losses.set(title=f"{title}: losses", xlabel="epoch")
    floor = summary.get("noise_floor") or {}
    factor = config.get("fit_factor", 2.0)
    for key, style in (("w1", "o-"), ("energy", "-")):
        colour = draw_series(distances, rows, members, key, key, style=style)
        if key in floor and colour:
            distances.axhline(floor[key], color=colour, ls=":", lw=1, label=f"{key} noise floor")
    if "w1" in floor:
        distances.axhline(
            factor * floor["w1"],
            color="0.3",
            ls="--",
            lw=1,
            label=f"fitted: {factor:g}× the W1 floor",
        )
    distances.set(title=f"{title}: distance to the test set", xlabel="epoch", yscale="log")
    distances.legend(fontsize="small")
    fig.savefig(path)
