"""What both processes of a run know of it: worked out once by harness.main.prepare_run, read
by the training loop, the recorder and the console."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class Run:
    cfg: dict  # every flag's value (harness.flags) and the variant
    members: list[dict]  # one config per model of the ensemble (harness.ensemble)
    names: list[str]  # each member's name, and the name of its folder in an ensemble's
    device: torch.device  # where training runs
    uncompiled_because: str | None  # None: the step is to be compiled (it may still fail);
    # else why not: --no-compile, or what the GPU lacks (no Triton, too old for it)
    source: str  # where the points came from: a file (and its array), or a toy's name
    train: np.ndarray  # the training points
    test: np.ndarray  # the held-out points every distance compares with
    modes: dict | None  # a toy mixture's "means" and "std", which the mode metrics score
    steps: int  # training steps per epoch
    folder: Path  # the run folder
    member_dirs: list[Path]  # each member's folder: [folder] for a single model
    checkpoint: dict | None  # the snapshot a resumed run goes on from; None for a new run
    started: float  # time.time() when the run was set up: summary.json's wall_s counts from it
    eval_z: list[torch.Tensor]  # per member, the fixed noise it is scored and drawn on
    floor_seed: int  # seed of the noise floor's samples of the training points
    window: tuple[float, float, float, float]  # the frames' axes: the points with a margin
