"""A run's numbers, frames and flags as TensorBoard events (--tensorboard), written by the
recorder into each model's run folder beside its metrics.csv, so that `tensorboard --logdir runs`
shows every model as a run while it trains and compares runs. torch.utils.tensorboard is
imported here only when a run asks for it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# metrics.csv's columns as TensorBoard's tags, a section each: losses, distances, coverage
TAGS = {
    "g_loss": "loss/generator",
    "d_loss": "loss/critic",
    "penalty": "loss/penalty",
    "weighted_penalty": "loss/weighted_penalty",
    "slope": "critic/slope",
    "w1": "distance/w1",
    "energy": "distance/energy",
    "precision": "coverage/precision",
    "recall": "coverage/recall",
    "modes": "modes/modes",
    "hq": "modes/high_quality",
    "reverse_kl": "modes/reverse_kl",
}
FLOOR_TAG = "distance/w1_over_floor"


def open_board(folder: Path, resumed_from: int | None):
    """A writer of events into the folder; a resumed run's events from its checkpoint's epoch
    on (which it records again) replace those an earlier writer left (TensorBoard's
    purge_step)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder), purge_step=resumed_from, flush_secs=5)


def log_row(board, row: dict, floor_w1: float) -> None:
    """An epoch's metrics row as scalars at its epoch, W1 / noise floor beside W1."""
    epoch = int(row["epoch"])
    for key, tag in TAGS.items():
        if row.get(key) is not None and np.isfinite(row[key]):
            board.add_scalar(tag, row[key], epoch)
    if row.get("w1") is not None and floor_w1 > 0:
        board.add_scalar(FLOOR_TAG, row["w1"] / floor_w1, epoch)
    board.flush()


def log_frame(board, picture: Path, epoch: int) -> None:
    """A frame, as drawn when it was recorded (the run's colour scale so far), as an image."""
    pixels = np.asarray(Image.open(picture).convert("RGB"))
    board.add_image("frame", pixels, epoch, dataformats="HWC")
    board.flush()


def hparam_value(value):
    """A flag's value as TensorBoard's hparams take it: a number, a string or a bool."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return "none" if value is None else value
    return json.dumps(value)


def log_hparams(board, cfg: dict, final: dict, floor_w1: float) -> None:
    """The run's flags and its final numbers, for TensorBoard's table of runs (HParams)."""
    from torch.utils.tensorboard.summary import hparams

    flags = {k: hparam_value(v) for k, v in cfg.items() if not isinstance(v, dict) or v}
    numbers = {
        f"final/{key}": value
        for key, value in final.items()
        if key in TAGS and isinstance(value, float) and np.isfinite(value)
    }
    if final.get("w1") is not None and floor_w1 > 0:
        numbers["final/w1_over_floor"] = final["w1"] / floor_w1
    for summary in hparams(flags, numbers):
        board.file_writer.add_summary(summary)
    for tag, value in numbers.items():
        board.add_scalar(tag, value, int(final["epoch"]))
    board.flush()
