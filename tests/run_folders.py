"""Hand-made run folders, as lab5 writes them, for the page's and the browser's tests: a
completed run, one interrupted at epoch 0 with one frame, a diverged one, one a sweep pruned,
an ensemble of two, a toy run with mode metrics, and a folder whose name and config hold
HTML."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

FLOOR = {"w1": 0.02, "w1_sd": 0.004, "energy": 0.0008, "energy_sd": 0.0005}
HOSTILE = 'x<b>&"y'  # a folder name that would break the page if it were not escaped


def picture(path: Path, colour: tuple) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 40), colour).save(path)


def run_folder(
    folder: Path,
    variant: str,
    summary: dict,
    frames: list[int],
    changed: dict | None = None,
    data: str = "data/points.mat",
    preset: str | None = None,
) -> dict:
    """A run's config, summary, metrics (an exact W1 at each frame's epoch), frames, curves
    and GIF; returns the summary."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "variant": variant,
                "data": data,
                "gp_weight": 0.001,
                "fit_factor": 2.0,
                "changed": changed or {},
                "preset": preset,
                "members": [folder.name],
            }
        )
    )
    summary = {"noise_floor": FLOOR, "diverged_members": None, **summary}
    (folder / "summary.json").write_text(json.dumps(summary))
    with open(folder / "metrics.csv", "w", newline="") as f:
        table = csv.DictWriter(f, ["epoch", "g_loss", "d_loss", "energy", "w1"])
        table.writeheader()
        for epoch in range(summary["epochs_done"] + 1):
            table.writerow(
                {
                    "epoch": epoch,
                    "g_loss": 0.1 * epoch,
                    "d_loss": -0.1,
                    "energy": 0.01 / (epoch + 1),
                    "w1": 0.5 / (epoch + 1) if epoch in frames else None,
                }
            )
    for epoch in frames:
        picture(folder / "frames" / f"epoch_{epoch:04d}.png", (epoch * 20 % 255, 90, 140))
    picture(folder / "curves.png", (200, 200, 200))
    Image.open(folder / "frames" / f"epoch_{frames[0]:04d}.png").save(
        folder.with_name(folder.name + ".gif")
    )
    return summary


def final(w1: float, **more) -> dict:
    return {"epoch": 4, "w1": w1, "precision": 0.91, "recall": 0.87, "energy": 0.001, **more}


def build_runs(root: Path) -> dict[str, dict]:
    """The folders under root; returns each one's summary by its path relative to root."""
    runs = {
        "wgan_gp": run_folder(
            root / "wgan_gp",
            "wgan_gp",
            {"status": "completed", "epochs_done": 4, "final": final(0.0312), "epochs_to_fit": 3},
            [0, 2, 4],
            {"lr": 0.0005},
            preset="fast",
        ),
        "gan": run_folder(
            root / "gan",
            "gan",
            {
                "status": "interrupted",
                "epochs_done": 0,
                "final": final(0.98, epoch=0),
                "epochs_to_fit": None,
            },
            [0],
        ),
        "wgan": run_folder(
            root / "wgan",
            "wgan",
            {
                "status": "diverged",
                "epochs_done": 2,
                "final": final(0.25, epoch=2),
                "epochs_to_fit": None,
                "diverged_members": ["seed0"],
            },
            [0, 2],
        ),
        "toy": run_folder(
            root / "toy",
            "gan",
            {
                "status": "completed",
                "epochs_done": 4,
                "final": final(0.05, modes=7.0, hq=0.93, reverse_kl=0.0412),
                "epochs_to_fit": 4,
            },
            [0, 2, 4],
            {"data": "ring8"},
            data="ring8",
        ),
        "pruned": run_folder(
            root / "pruned",
            "gan",
            {"status": "interrupted", "epochs_done": 3, "final": final(0.5, epoch=3)},
            [0, 2],
        ),
        HOSTILE: run_folder(
            root / HOSTILE,
            "gan",
            {"status": "completed", "epochs_done": 2, "final": final(0.07), "epochs_to_fit": 2},
            [0, 2],
            {"data": "<script>alert(1)</script>"},
        ),
    }
    sweep = {"study": "s", "trial": 5, "state": "pruned", "epoch": 2}  # as a sweep marks it
    (root / "pruned" / "sweep.json").write_text(json.dumps(sweep))
    members = [
        run_folder(
            root / "ens" / f"seed{i}",
            "wgan",
            {"status": "completed", "epochs_done": 4, "final": final(w1), "epochs_to_fit": fit},
            [0, 2, 4],
            {"seed": i},
        )
        for i, (w1, fit) in enumerate([(0.03, 2), (0.05, None)])
    ]
    (root / "ens" / "config.json").write_text(
        json.dumps(
            {
                "variant": "wgan",
                "data": "data/points.mat",
                "fit_factor": 2.0,
                "changed": {"seeds": 2},
                "members": ["seed0", "seed1"],
            }
        )
    )
    w1 = [m["final"]["w1"] for m in members]
    runs["ens"] = {
        "status": "completed",
        "epochs_done": 4,
        "noise_floor": FLOOR,
        "diverged_members": None,
        "epochs_to_fit": [2, None],
        "final": {
            "epoch": 4,
            "members": 2,
            "w1_mean": float(np.mean(w1)),
            "w1_se": float(np.std(w1, ddof=1) / np.sqrt(2)),
            "precision_mean": 0.91,
            "precision_se": 0.01,
            "recall_mean": 0.87,
            "recall_se": 0.02,
        },
    }
    (root / "ens" / "summary.json").write_text(json.dumps(runs["ens"]))
    picture(root / "ens" / "curves.png", (180, 180, 180))
    runs.update({f"ens/seed{i}": m for i, m in enumerate(members)})
    return runs
