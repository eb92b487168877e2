"""Runs side by side. runs/compare.gif: frame by frame at the epochs they all drew, under one
title line with the epoch and each run's W1 against its noise floor (the lab report's picture:
GAN, WGAN and WGAN-GP at the same epochs). The matched comparison's (experiments/
compare_variants.py): its frames at the same generator updates, and its figure of W1 / noise
floor against them."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from harness.run_folder import config_of, find_runs, frames, read_summary, summary_time, w1_ratios

MATCHED = {"gif": "compare.gif", "figure": "fit.png", "verdict": "verdict.md"}  # a comparison's
TITLE_HEIGHT = 30
TITLE_SIZE = 17
FONT = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")  # has "×"


def latest_runs(root: Path) -> list[Path]:
    """The latest completed run folder of each variant directly under root (by its summary's
    time), in the variants' order: the report's comparison of the three. An interrupted or
    diverged run, or an ensemble, is not the variant's picture."""
    latest: dict[str, Path] = {}
    singles = [run for run, members in find_runs(root) if run.parent == root and not members]
    for run in sorted(singles, key=summary_time):
        if frames(run) and read_summary(run).get("status") == "completed":
            latest[config_of(run).get("variant", "?")] = run
    return [latest[v] for v in sorted(latest)]


def panel_labels(runs: list[Path]) -> list[str]:
    """What names each run in the title: its variant (and its folder, where two share one)."""
    titles = [config_of(run).get("title") or config_of(run).get("variant", "?") for run in runs]
    return [t if titles.count(t) == 1 else f"{t} {run.name}" for t, run in zip(titles, runs)]


def title_line(epoch: int, runs: list[Path], ratios: list[dict]) -> str:
    """The epoch, and each run's generator updates by then (the same epochs are not the same
    training) and its W1 / noise floor."""
    parts = []
    for run, label, r in zip(runs, panel_labels(runs), ratios):
        steps = config_of(run).get("steps_per_epoch")
        trained = f" ({epoch * steps:,} updates)" if steps else ""
        parts.append(f"{label}{trained} {r[epoch]:.2f}×" if epoch in r else f"{label} –")
    return f"epoch {epoch}   ·   W1 / noise floor:   " + "   ".join(parts)


def side_by_side(images: list[Image.Image], title: str) -> Image.Image:
    width = sum(im.width for im in images)
    height = max(im.height for im in images)
    canvas = Image.new("RGB", (width, height + TITLE_HEIGHT), "white")
    for i, im in enumerate(images):
        canvas.paste(im.convert("RGB"), (sum(m.width for m in images[:i]), TITLE_HEIGHT))
    font = ImageFont.truetype(FONT, TITLE_SIZE)
    ImageDraw.Draw(canvas).text(
        (width / 2, TITLE_HEIGHT / 2), title, fill="black", font=font, anchor="mm"
    )
    return canvas


def compare_frames(runs: list[Path]) -> list[Image.Image]:
    """One picture per epoch that every run drew a frame at, in epoch order."""
    files = [frames(run) for run in runs]
    ratios = [w1_ratios(run) for run in runs]
    epochs = sorted(set.intersection(*(set(f) for f in files)))
    return [
        side_by_side([Image.open(f[epoch]) for f in files], title_line(epoch, runs, ratios))
        for epoch in epochs
    ]


def updates_text(updates: list[int]) -> str:
    """The generator updates the panels were trained for: one number, or theirs where an
    epoch's rounding parts them."""
    if len(set(updates)) == 1:
        return f"{updates[0]:,} generator updates"
    return f"{max(updates):,} generator updates ({', '.join(f'{u:,}' for u in updates)})"


def matched_frame(frames: list[Path], titles: list[str], updates: list[int], ratios) -> Image.Image:
    """The variants' frames side by side after the same training, under the updates and each
    variant's W1 / noise floor (its seeds' mean)."""
    scores = "   ".join(f"{t} {r:.2f}×" for t, r in zip(titles, ratios))
    title = f"{updates_text(updates)}   ·   W1 / noise floor, mean of the seeds:   {scores}"
    return side_by_side([Image.open(f) for f in frames], title)


def plot_matched(curves: list[dict], path: Path) -> None:
    """W1 / noise floor against generator updates from the first score on (the untrained
    generators' tens of times the floor would flatten the rest), a curve per variant (the mean
    over its seeds, ±1 standard error shaded, each seed faint), beside the floor (1×), the fit
    factor and a Gaussian blob of the data's mean and covariance (a generator of no shape)."""
    fig = Figure(figsize=(8.5, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for curve, colour in zip(curves, ("tab:blue", "tab:orange", "tab:green")):
        ratios = curve["ratios"][:, 1:]
        mean = ratios.mean(0)
        se = ratios.std(0, ddof=1) / np.sqrt(len(ratios)) if len(ratios) > 1 else 0 * mean
        x = curve["updates"][1:]
        ax.plot(x, mean, "o-", ms=3, lw=1.6, color=colour, label=f"{curve['title']}")
        ax.fill_between(x, mean - se, mean + se, color=colour, alpha=0.25, lw=0)
        for seed in ratios:
            ax.plot(x, seed, lw=0.6, alpha=0.35, color=colour)
    factor = curves[0]["factor"]
    ax.axhline(curves[0]["blob"], color="0.4", ls="-.", lw=1, label="a Gaussian blob: no shape")
    ax.axhline(factor, color="0.3", ls="--", lw=1, label=f"fitted: within {factor:g}× the floor")
    ax.axhline(1, color="black", ls=":", lw=1, label="the noise floor: a perfect generator")
    seeds = len(curves[0]["ratios"])
    ax.set(yscale="log", xlabel="generator updates", title="Which variant fits best?")
    ax.set(ylabel=f"W1 / noise floor (mean ± s.e. of {seeds} seeds; each seed faint)")
    ax.xaxis.set_major_formatter("{x:,.0f}")
    ax.yaxis.set_major_formatter("{x:g}×")
    ax.yaxis.set_minor_formatter("{x:g}×")
    ax.legend(fontsize="small", loc="upper right")
    fig.savefig(path)
