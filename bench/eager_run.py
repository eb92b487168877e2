"""The whole-run reference: the eager script a student would write for the same training.

nn.Sequential networks, torch.optim and .backward() (tests/eager_reference.py, which the tests
hold lab5's step to at 1e-10), doing the same epochs over the same batches and noise as
`python variants/<variant>.py` with the same flags, at torch's default thread count, and
nothing else: no frames, no metrics, no files.

    python bench/eager_run.py wgan_gp --n-critic 1 --batch-size 64     # prints its seconds
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import lab5
from harness.flags import parse_config
from harness.main import load_data, split_data
from tests.eager_reference import make_reference, reference_step

ROOT = Path(__file__).resolve().parents[1]


def train_eagerly(cfg: dict) -> None:
    points, _, source = load_data(cfg)
    train_points, _ = split_data(cfg, points, source)
    state = lab5.init_state(cfg, lab5.make_rng(cfg["seed"], "init"), "cpu")
    model = make_reference(cfg, state["g"], state["d"])
    rng = lab5.make_rng(cfg["seed"], "train")
    train = torch.as_tensor(train_points, dtype=torch.float32)
    steps = len(train) // (cfg["batch_size"] * cfg["n_critic"])
    for _ in range(cfg["epochs"]):
        batches = lab5.epoch_batches(train, cfg, steps, rng, "cpu")
        for i in range(steps):
            reference_step(model, {k: v[i] for k, v in batches.items()})


if __name__ == "__main__":
    started = time.perf_counter()
    train_eagerly(parse_config(sys.argv[1], sys.argv[2:]))
    print(f"{time.perf_counter() - started:.2f}")
