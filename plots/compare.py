"""runs/compare.gif: runs side by side, frame by frame at the epochs they all drew, under one
title line with the epoch and each run's W1 against its noise floor (the lab report's picture:
GAN, WGAN and WGAN-GP at the same epochs)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
from PIL import Image, ImageDraw, ImageFont

from recording.files import read_json, read_table

TITLE_HEIGHT = 30
TITLE_SIZE = 17
FONT = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")  # has "×"


def frame_files(run: Path) -> dict[int, Path]:
    return {int(p.stem.split("_")[1]): p for p in (run / "frames").glob("epoch_*.png")}


def w1_ratios(run: Path) -> dict[int, float]:
    """W1 / noise floor at each epoch that has an exact W1 (every frame's epoch has one)."""
    summary = json.loads((run / "summary.json").read_text())
    floor = summary["noise_floor"]["w1"]
    return {
        int(r["epoch"]): r["w1"] / floor
        for r in read_table(run / "metrics.csv")
        if r["w1"] is not None and floor > 0
    }


def latest_runs(root: Path) -> list[Path]:
    """The latest completed run folder of each variant directly under root (by its summary's
    time), in the variants' order: the report's comparison of the three. An interrupted or
    diverged run, or an ensemble, is not the variant's picture."""
    latest: dict[str, Path] = {}
    for summary in sorted(root.glob("*/summary.json"), key=lambda p: p.stat().st_mtime):
        run = summary.parent
        single = frame_files(run) and (run / "metrics.csv").exists()
        if single and read_json(summary).get("status") == "completed":
            latest[read_json(run / "config.json").get("variant", "?")] = run
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
    files = [frame_files(run) for run in runs]
    ratios = [w1_ratios(run) for run in runs]
    epochs = sorted(set.intersection(*(set(f) for f in files)))
    return [
        side_by_side([Image.open(f[epoch]) for f in files], title_line(epoch, runs, ratios))
        for epoch in epochs
    ]
