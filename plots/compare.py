"""runs/compare.gif: runs side by side, frame by frame at the epochs they all drew, under one
title line with the epoch and each run's W1 against its noise floor (the lab report's picture:
GAN, WGAN and WGAN-GP at the same epochs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from PIL import Image, ImageDraw, ImageFont

from harness.run_folder import config_of, find_runs, frames, read_summary, summary_time, w1_ratios

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


def title_line(epoch: int, runs: list[Path], ratios: list[dict]) -> str:
    parts = [
        f"{run.name} {r[epoch]:.2f}×" if epoch in r else f"{run.name} –"
        for run, r in zip(runs, ratios)
    ]
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
