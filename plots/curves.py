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


def legend_below(ax) -> None:
    """The panel's legend under its axes, where it covers no curve."""
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize="small", frameon=False
    )


def draw_losses(ax, rows: list[dict], members: list[list[dict]]) -> None:
    """The two losses, and for WGAN-GP the penalty's part of the critic's loss (its weight
    times the penalty, as training had it in each epoch)."""
    draw_series(ax, rows, members, "g_loss", "generator's loss", color="tab:blue")
    draw_series(ax, rows, members, "d_loss", "critic's loss", color="tab:orange")
    label = "gp_weight × penalty: its part of the critic's loss"
    draw_series(ax, rows, members, "weighted_penalty", label, style="--", color="tab:green")
    ax.set(title="losses", xlabel="epoch", ylabel="loss (mean over the epoch's steps)")
    legend_below(ax)


def draw_penalty(ax, rows: list[dict], members: list[list[dict]], config: dict) -> None:
    """The gradient penalty itself, unweighted, on a log scale: how far the critic's slope is
    from 1 (it starts near 100 while the losses move within a few units)."""
    draw_series(ax, rows, members, "penalty", "E[(‖∇D(x̂)‖ − 1)²]", color="tab:green")
    weight = f"weighted by gp_weight {config['gp_weight']:g}" if "gp_weight" in config else ""
    if (config.get("vary") or [None])[0] == "gp_weight":
        weight = f"weighted by gp_weight {', '.join(f'{v:g}' for v in config['vary'][1])}"
    if config.get("anneal") or config.get("cooldown"):
        weight += " (scheduled)"
    ax.set(title="gradient penalty, unweighted", xlabel="epoch", yscale="log")
    ax.set(ylabel="penalty (log scale)")
    ax.text(0.98, 0.96, weight, transform=ax.transAxes, ha="right", va="top", fontsize="small")
    legend_below(ax)


def draw_distances(ax, rows: list[dict], members: list[list[dict]], config, summary) -> None:
    """W1 and the energy distance to the test set, against the noise floor (what a perfect
    generator scores) and the fit threshold."""
    floor = summary.get("noise_floor") or {}
    factor = config.get("fit_factor", 2.0)
    lines = (("w1", "W1", "o-", "tab:red"), ("energy", "energy", "-", "tab:purple"))
    for key, name, style, colour in lines:
        drawn = draw_series(ax, rows, members, key, name, style, colour)
        if key in floor and drawn:
            ax.axhline(floor[key], color=colour, ls=":", lw=1, label=f"{name}'s noise floor")
    if "w1" in floor:
        label = f"fitted: W1 within {factor:g}× its floor"
        ax.axhline(factor * floor["w1"], color="0.3", ls="--", lw=1, label=label)
    ax.set(title="distance to the test set", xlabel="epoch", ylabel="distance (log scale)")
    ax.set(yscale="log")
    legend_below(ax)


def plot_curves(
    rows: list[dict], members: list[list[dict]], config: dict, summary: dict, title: str, path: Path
) -> None:
    """Losses, the gradient penalty (WGAN-GP) and distances per epoch, a panel each with its own
    axes and its legend beneath (an ensemble's mean ± s.e., its members faint beneath)."""
    penalty = len(series(rows, "penalty")[0]) > 0
    panels = 3 if penalty else 2
    fig = Figure(figsize=(4.4 * panels, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, panels))
    draw_losses(axes[0], rows, members)
    if penalty:
        draw_penalty(axes[1], rows, members, config)
    draw_distances(axes[-1], rows, members, config, summary)
    fig.suptitle(title)
    fig.savefig(path)
