"""The curves of a lab5 run: its losses and its distances to the test set per epoch, read from
its metrics.csv (or an ensemble's ensemble.csv, its members faint beneath).

matplotlib's object API on the Agg canvas (no pyplot, no display, no global figure state).
"""

from __future__ import annotations

import math
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


def legend_below(ax, ncols: int = 2) -> None:
    """The panel's legend under its axes, where it covers no curve."""
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=ncols, fontsize="small", frameon=False
    )


def equilibrium(config: dict) -> dict[str, float]:
    """GAN's losses where the discriminator cannot tell (D = ½ everywhere): the critic's
    −[log ½ + log ½] = 2 log 2, the generator's log ½ (minimax) or −log ½ (nonsaturating)."""
    if config.get("variant") != "gan":
        return {}
    g_loss = math.log(0.5) if config.get("gan_loss", "minimax") == "minimax" else -math.log(0.5)
    return {"d_loss": 2 * math.log(2), "g_loss": g_loss}


def draw_losses(ax, rows: list[dict], members: list[list[dict]], config: dict) -> None:
    """The two losses, for GAN with where they sit at equilibrium (losses that stay there: a
    discriminator that cannot tell, not one that learnt nothing), and for WGAN-GP the
    penalty's part of the critic's loss (its weight times the penalty, as each epoch had it)."""
    colours = {"g_loss": "tab:blue", "d_loss": "tab:orange"}
    draw_series(ax, rows, members, "g_loss", "generator's loss", color=colours["g_loss"])
    draw_series(ax, rows, members, "d_loss", "critic's loss", color=colours["d_loss"])
    label = "gp_weight × penalty: its part of the critic's loss"
    draw_series(ax, rows, members, "weighted_penalty", label, style="--", color="tab:green")
    for i, (key, value) in enumerate(equilibrium(config).items()):
        label = "at equilibrium: D(x) = ½ everywhere" if i == 0 else None
        ax.axhline(value, color=colours[key], ls=":", lw=1.2, label=label)
        ax.annotate(
            f"{value:.3f}",
            (1, value),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color=colours[key],
        )
    ax.set(title="losses", xlabel="epoch", ylabel="loss (mean over the epoch's steps)")
    legend_below(ax, ncols=1)


def penalty_weights(config: dict) -> str:
    """The penalty's weight as the run had it: one, each member's, or scheduled."""
    weight = f"gp_weight {config['gp_weight']:g}" if "gp_weight" in config else ""
    if (config.get("vary") or [None])[0] == "gp_weight":
        weight = f"gp_weight {', '.join(f'{v:g}' for v in config['vary'][1])}"
    if config.get("anneal") or config.get("cooldown"):
        weight += " (scheduled)"
    return weight


def draw_slope(ax, rows: list[dict], members: list[list[dict]], config: dict) -> None:
    """WGAN-GP's critic's mean slope ‖∇ₓD(x̂)‖ on the interpolates, which its penalty
    E[(‖∇ₓD(x̂)‖ − 1)²] pulls towards 1 with the weight gp_weight: a lecture's unit slope, or
    how far from it a weak penalty lets it go."""
    draw_series(ax, rows, members, "slope", "mean ‖∇ₓD(x̂)‖ on the interpolates", color="tab:green")
    target = f"the target of the penalty E[(‖∇D‖ − 1)²], weighted by {penalty_weights(config)}"
    ax.axhline(1, color="0.3", ls="--", lw=1, label=target)
    ax.set(title="the critic's slope, which the penalty pulls to 1", xlabel="epoch")
    ax.set(ylabel="‖∇ₓD(x̂)‖ (log scale)", yscale="log")
    legend_below(ax, ncols=1)


def draw_penalty(ax, rows: list[dict], members: list[list[dict]], config: dict) -> None:
    """The gradient penalty itself, unweighted, on a log scale, for a run recorded before the
    slope was: how far the critic's slope is from 1."""
    draw_series(ax, rows, members, "penalty", "E[(‖∇D(x̂)‖ − 1)²]", color="tab:green")
    note = f"weighted by {penalty_weights(config)}"
    ax.text(0.98, 0.96, note, transform=ax.transAxes, ha="right", va="top", fontsize="small")
    ax.set(title="gradient penalty, unweighted", xlabel="epoch", yscale="log")
    ax.set(ylabel="penalty (log scale)")
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
    """Losses, WGAN-GP's slope (or, recorded before it, its penalty) and distances per epoch, a
    panel each with its own axes and its legend beneath (an ensemble's mean ± s.e., its members
    faint beneath)."""
    slope = len(series(rows, "slope")[0]) > 0
    penalty = slope or len(series(rows, "penalty")[0]) > 0
    panels = 3 if penalty else 2
    fig = Figure(figsize=(4.4 * panels, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, panels))
    draw_losses(axes[0], rows, members, config)
    if penalty:
        (draw_slope if slope else draw_penalty)(axes[1], rows, members, config)
    draw_distances(axes[-1], rows, members, config, summary)
    fig.suptitle(title)
    fig.savefig(path)
