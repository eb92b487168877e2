"""The JAX + optax peer of the benchmarks does lab5's math: from the same initial parameters and
batches (passed as NumPy arrays), its losses at every step and its parameters, optimiser states
and generator average after a few steps equal lab5's step's, in float64 to its rounding, for
every variant, update order and a critic's several updates; a scanned epoch equals its steps
one by one. Skipped where JAX is not installed: it is an optional benchmark dependency
(pip install -r requirements-bench.txt)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import vmap

import lab5
from harness.flags import parse_config

jax = pytest.importorskip(
    "jax", reason="the JAX peer is optional: pip install -r requirements-bench.txt"
)
jax.config.update("jax_enable_x64", True)  # this process's JAX: float64, as the reference
from bench import jax_peer  # noqa: E402

CASES = {
    "gan": ("gan", []),
    "gan-nonsaturating-d-first": ("gan", ["--gan-loss", "nonsaturating", "--order", "d-first"]),
    "wgan": ("wgan", ["--clip", "0.05"]),
    "wgan_gp": ("wgan_gp", ["--gp-weight", "0.5"]),
    "wgan_gp-simultaneous-2-critic": ("wgan_gp", ["--order", "simultaneous", "--n-critic", "2"]),
    "wgan_gp-ema-from-epoch-2": ("wgan_gp", ["--ema-start", "2", "--ema", "0.9"]),
}
STEPS = 4


def setup(variant: str, flags: list[str]):
    cfg = parse_config(variant, ["--batch-size", "16", "--hidden", "16,8", *flags])
    points = torch.rand(16 * cfg["n_critic"] * STEPS, 2, generator=torch.Generator().manual_seed(0))
    batches = lab5.epoch_batches(points, cfg, STEPS, lab5.make_rng(0, "train"), "cpu")
    return cfg, {k: v.double() for k, v in batches.items()}


@pytest.mark.parametrize("case", CASES)
def test_the_peer_s_steps_are_lab5_s_steps(case):
    cfg, batches = setup(*CASES[case])
    cfg = {**cfg, "steps_per_epoch": 1}  # --ema-start 2: the average starts at step 2
    # the float32 initial parameters of a run, in float64 for both, and the hyper-parameters'
    # values in float64 (not float32's nearest, which the peer's Python floats are not)
    state = lab5.tree_map(lambda t: t.double(), lab5.init_members([cfg], "cpu"))
    state = lab5.with_hyper(state, [{k: cfg[k] for k in lab5.HYPER if k in cfg}])
    step = vmap(lab5.make_train_step(cfg))
    peer_step = jax.jit(jax_peer.make_step(cfg, 1))
    peer = jax_peer.initial_state(cfg, np.float64)
    for i in range(STEPS):
        batch = {k: v[i] for k, v in batches.items()}
        state, losses = step(state, {k: v[None] for k, v in batch.items()})
        peer, peer_losses = peer_step(
            peer, {k: jax.numpy.asarray(v.numpy()) for k, v in batch.items()}
        )
        assert peer_losses.keys() == losses.keys()
        for name, value in losses.items():
            np.testing.assert_allclose(peer_losses[name], value[0].numpy(), rtol=1e-10, atol=1e-12)
    for part in ("g", "d"):
        for name, value in state[part].items():
            np.testing.assert_allclose(peer[part][name], value[0].numpy(), rtol=1e-9, atol=1e-12)
    for name, value in state["ema"]["g"].items():
        np.testing.assert_allclose(peer["ema"]["g"][name], value[0].numpy(), rtol=1e-9, atol=1e-12)
    square = jax.tree.leaves(peer["d_opt"])  # RMSprop's running square, besides its counters
    np.testing.assert_allclose(
        sorted(float(np.sum(s)) for s in square if np.ndim(s) == 2),
        sorted(float(v[0].sum()) for v in state["d_opt"]["square_avg"].values() if v.ndim == 3),
        rtol=1e-9,
    )


def test_a_scanned_epoch_is_its_steps_one_by_one():
    cfg, batches = setup("wgan_gp", [])
    step = jax_peer.make_step(cfg, STEPS)
    start = jax_peer.initial_state(cfg, np.float64)
    as_jax = {k: jax.numpy.asarray(v.numpy()) for k, v in batches.items()}
    scanned, mean_losses = jax_peer.scanned_epoch(step)(start, as_jax)
    looped, loop_losses = jax_peer.looped_epoch(step, STEPS)(start, as_jax)
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(looped)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for name in mean_losses:
        np.testing.assert_allclose(mean_losses[name], loop_losses[name], rtol=1e-12)
