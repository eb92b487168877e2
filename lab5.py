"""lab5: GAN, WGAN and WGAN-GP learn a 2-D point cloud, in functional PyTorch.

One file, read top to bottom in the order the data flows:

    config -> data -> models -> objectives -> optimisers -> step -> loop -> outputs

Parameters are plain ``dict[str, Tensor]`` keyed like the matching ``nn.Sequential`` and applied
with ``torch.func.functional_call``; gradients come from ``torch.func.grad``; optimisers are pure
``init``/``update`` pairs with explicit state; a training step is a pure function
``(state, batch) -> (state, metrics)`` compiled once with ``torch.compile``. All randomness is
drawn outside the step from seeded generators and passed in, like JAX keys.

The three variants differ in a few lines of ``critic_loss``, ``generator_loss`` and
``update_critic``; everything else is shared. Run a variant with ``python variants/wgan_gp.py``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import scipy.io
import scipy.sparse
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.special import xlogy
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vmap

from plots.frames import make_frame_writer

ROOT = Path(__file__).resolve().parent
VARIANTS = ("gan", "wgan", "wgan_gp")
TITLES = {"gan": "GAN", "wgan": "WGAN", "wgan_gp": "WGAN-GP"}


class UserError(Exception):
    """A mistake in the user's flags or input file: reported as one line, exit status 2."""


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------

# What the report fixes, for every variant: RMSprop, learning rate 1e-4 for both networks,
# 200 epochs, the generator updated before the critic.
REPORT = dict(optimizer="rmsprop", lr=1e-4, epochs=200, order="g-first")

# What the report leaves open, chosen by final W1 over seeds (README, "Defaults"; reproduce with
# experiments/sweep.py). The report's code, literally: --order simultaneous --n-critic 1
# --batch-size 64 --init torch.
DEFAULTS = {
    "gan": dict(REPORT, batch_size=64, noise_dim=8, n_critic=5, init="torch", gan_loss="minimax"),
    "wgan": dict(REPORT, batch_size=64, noise_dim=8, n_critic=1, init="torch", clip=0.1),
    "wgan_gp": dict(REPORT, batch_size=32, noise_dim=8, n_critic=1, init="kaiming", gp_weight=0.001),
}


def fail(message: str):
    """argparse's error hook: turn its two-line usage error into our one-line error."""
    raise UserError(message)


def build_parser(variant: str) -> argparse.ArgumentParser:
    d = DEFAULTS[variant]
    p = argparse.ArgumentParser(
        prog=f"python variants/{variant}.py",
        description=f"Train {TITLES[variant]} on a 2-D point cloud and write a run folder "
        "(config.json, metrics.csv, frames/, generator.pt, critic.pt, summary.json).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.error = fail
    a = p.add_argument_group("data").add_argument
    a("--data", default="data/points.mat", metavar="PATH", help="MAT file with the points (relative paths are "
      f"tried from the current folder, then from the repository), or a built-in toy set: {', '.join(TOY_DATA)}")
    a("--key", default="xx", metavar="NAME", help="variable in the MAT file holding an N×2 array of points")
    a("--train-size", type=int, default=7000, metavar="N", help="points used for training, after a seeded shuffle")
    a("--test-size", type=int, default=0, metavar="N",
      help="held-out points for the distances (0: every row after the training ones)")
    a("--data-seed", type=int, default=0, metavar="SEED",
      help="seed of the shuffle before the train/test split; kept apart from --seed so that runs "
      "with different seeds share one split")
    a = p.add_argument_group("model and training").add_argument
    a("--epochs", type=int, default=d["epochs"], metavar="N", help="passes of the critic over the training points")
    a("--batch-size", type=int, default=d["batch_size"], metavar="N", help="points per critic update")
    a("--n-critic", type=int, default=d["n_critic"], metavar="N",
      help="critic updates per generator update, each on its own real batch (so an epoch has "
      "train-size // (batch-size * n-critic) generator updates)")
    a("--order", choices=("g-first", "d-first", "simultaneous"), default=d["order"],
      help="g-first (the report's order): the generator steps, then the critic learns from the "
      "updated generator; d-first: the critic, then the generator against the updated critic; "
      "simultaneous (the report's code, literally): the generator steps, then the critic learns "
      "from the samples drawn before that step, so both step from the same point")
    a("--noise-dim", type=int, default=d["noise_dim"], metavar="N", help="dimension of the generator's noise z ~ N(0, I)")
    a("--init", choices=("torch", "kaiming"), default=d["init"],
      help="torch: nn.Linear's default U(±1/sqrt(fan_in)); kaiming: N(0, 2/fan_in) weights, zero biases")
    a("--seed", type=int, default=0, metavar="SEED", help="seed of the initialisation, the batches and the noise")
    a = p.add_argument_group("optimiser (the same for both networks, as in the report)").add_argument
    a("--optimizer", choices=("rmsprop", "sgd", "adam"), default=d["optimizer"], help="update rule")
    a("--lr", type=float, default=d["lr"], metavar="X", help="learning rate of both networks")
    a("--momentum", type=float, default=0.0, metavar="X", help="momentum (rmsprop, sgd)")
    a("--nesterov", action="store_true", help="Nesterov momentum (sgd)")
    a("--weight-decay", type=float, default=0.0, metavar="X", help="L2 penalty added to the gradient")
    a("--rms-alpha", type=float, default=0.99, metavar="X", help="smoothing constant of the squared-gradient average (rmsprop)")
    a("--centered", action="store_true", help="divide by the gradient's variance instead of its raw second moment (rmsprop)")
    a("--betas", type=float, nargs=2, default=(0.9, 0.999), metavar=("B1", "B2"), help="moment decay rates (adam)")
    a("--opt-eps", type=float, default=1e-8, metavar="X", help="term added to the denominator (rmsprop, adam)")
    a = p.add_argument_group(f"{TITLES[variant]} only").add_argument
    if variant == "gan":
        a("--gan-loss", choices=("minimax", "nonsaturating"), default=d["gan_loss"],
          help="generator loss: minimax minimises log(1 - D(G(z))) as in the report; "
          "nonsaturating maximises log D(G(z))")
    if variant == "wgan":
        a("--clip", type=float, default=d["clip"], metavar="C", help="critic parameters are clipped to [-clip, clip] after each update")
    if variant == "wgan_gp":
        a("--gp-weight", type=float, default=d["gp_weight"], metavar="X", help="weight of the gradient penalty (the report's 0.001)")
    a = p.add_argument_group("ensembles: several models in one vmapped step").add_argument
    a("--seeds", type=int, default=1, metavar="E",
      help="train E models with seeds --seed ... --seed+E-1 together; each gets a run folder of its "
      "own inside --out, and ensemble.csv holds the mean and standard error over them")
    a("--vary", type=parse_vary, default=None, metavar="NAME=V1,V2",
      help="train one model per value of lr (or gp_weight for WGAN-GP, clip for WGAN) for every seed")
    a = p.add_argument_group("run").add_argument
    a("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when there is one")
    a("--no-compile", action="store_true", help="run the step eagerly instead of through torch.compile")
    a("--frame-every", type=int, default=5, metavar="K", help="draw a frame every K epochs (0: none)")
    a("--fit-factor", type=float, default=2.0, metavar="F",
      help="a run has fitted from the first epoch after which its W1 stays within F × the noise floor")
    a("--eval-every", type=int, default=5, metavar="K",
      help="compute the exact Wasserstein-1 distance every K epochs and at the last (0: last only)")
    a("--out", default=f"runs/{variant}", metavar="DIR", help="run folder")
    return p


def parse_vary(text: str) -> tuple[str, list[float]]:
    """'lr=1e-4,3e-4' -> ('lr', [0.0001, 0.0003])"""
    name, _, values = text.partition("=")
    try:
        return name.replace("-", "_"), [float(v) for v in values.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,... with numbers, got {text!r}") from None


def parse_config(variant: str, argv: list[str] | None = None) -> dict:
    cfg = vars(build_parser(variant).parse_args(argv))
    cfg["variant"] = variant
    cfg["betas"] = list(cfg["betas"])
    variable = [name for name in VARIABLE if name in cfg]
    if cfg["vary"] and cfg["vary"][0] not in variable:
        raise UserError(f"--vary {cfg['vary'][0]}: {TITLES[variant]} can vary {', '.join(variable)}")
    if cfg["seeds"] < 1:
        raise UserError(f"--seeds must be a positive integer (got {cfg['seeds']})")
    for member in member_configs(cfg):  # every member's values checked as if given as flags
        validate_config(member)
    return cfg


# Optimiser flags, the optimisers they belong to, and their defaults: a flag given to another
# optimiser would be silently ignored, so it is an error instead.
OPTIMIZER_FLAGS = {"momentum": (("sgd", "rmsprop"), 0.0), "nesterov": (("sgd",), False),
                   "centered": (("rmsprop",), False), "rms_alpha": (("rmsprop",), 0.99),
                   "betas": (("adam",), [0.9, 0.999]), "opt_eps": (("rmsprop", "adam"), 1e-8)}
MAX_TEST_SIZE = 4096  # the exact W1 is O(n³): about 0.1 s at 1192 points, minutes beyond this


def validate_config(cfg: dict) -> None:
    def need(ok: bool, key: str, what: str):
        if not ok:
            raise UserError(f"--{key.replace('_', '-')} must be {what} (got {cfg[key]})")

    for key in ("epochs", "batch_size", "n_critic", "noise_dim", "train_size"):
        need(cfg[key] >= 1, key, "a positive integer")
    for key in ("test_size", "frame_every", "eval_every", "seed", "data_seed"):
        need(cfg[key] >= 0, key, "a non-negative integer")
    need(math.isfinite(cfg["lr"]) and cfg["lr"] > 0, "lr", "a positive number")
    need(math.isfinite(cfg["fit_factor"]) and cfg["fit_factor"] >= 1, "fit_factor", "a number of at least 1")
    need(0 <= cfg["momentum"] < 1, "momentum", "in [0, 1)")
    need(math.isfinite(cfg["weight_decay"]) and cfg["weight_decay"] >= 0, "weight_decay", "a non-negative number")
    need(0 <= cfg["rms_alpha"] < 1, "rms_alpha", "in [0, 1)")
    need(all(0 <= b < 1 for b in cfg["betas"]), "betas", "two numbers in [0, 1)")
    need(math.isfinite(cfg["opt_eps"]) and cfg["opt_eps"] > 0, "opt_eps", "a positive number")
    for key, (optimizers, default) in OPTIMIZER_FLAGS.items():
        if cfg[key] != default and cfg["optimizer"] not in optimizers:
            raise UserError(f"--{key.replace('_', '-')} is for --optimizer {' or '.join(optimizers)}, "
                            f"not {cfg['optimizer']}")
    need(not cfg["nesterov"] or cfg["momentum"] > 0, "nesterov", "used with --momentum > 0")
    if "clip" in cfg:
        need(math.isfinite(cfg["clip"]) and cfg["clip"] > 0, "clip", "a positive number")
    if "gp_weight" in cfg:
        need(math.isfinite(cfg["gp_weight"]) and cfg["gp_weight"] >= 0, "gp_weight", "a non-negative number")
    if cfg["batch_size"] * cfg["n_critic"] > cfg["train_size"]:
        raise UserError(f"--batch-size {cfg['batch_size']} × --n-critic {cfg['n_critic']} needs more "
                        f"training points than --train-size {cfg['train_size']}")


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to this PyTorch")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


# ----------------------------------------------------------------------------------------------
# Randomness: one seeded generator per purpose, like splitting a JAX key, so that drawing more
# numbers for one purpose (say, frames) never shifts the numbers of another (say, the batches).
# ----------------------------------------------------------------------------------------------

STREAMS = ("split", "init", "train", "eval", "floor", "toy")


def make_rng(seed: int, stream: str) -> torch.Generator:
    words = np.random.SeedSequence([seed, STREAMS.index(stream)]).generate_state(2)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

# The toy distributions of the GAN literature, built in beside points.mat: PacGAN's 2D-ring and
# 2D-grid (isotropic Gaussians, so samples can be scored against the modes) and the swiss roll of
# the WGAN-GP authors' toy script.
TOY_DATA = {
    "ring8": {"means": [(math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)) for i in range(8)], "std": 0.01},
    "grid25": {"means": [(i, j) for i in range(-4, 5, 2) for j in range(-4, 5, 2)], "std": 0.05},
    "swissroll": None,
}
TOY_SIZE = 8192  # as many points as points.mat, so that the default split is the same


def toy_points(name: str, rng: torch.Generator, n: int = TOY_SIZE) -> np.ndarray:
    modes = TOY_DATA[name]
    if modes is None:  # swiss roll: t ∈ [1.5π, 4.5π], (t cos t, t sin t) / 7.5 with noise 0.25 / 7.5
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=rng, dtype=torch.float64))
        roll = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
        return ((roll + 0.25 * torch.randn(n, 2, generator=rng, dtype=torch.float64)) / 7.5).numpy()
    means = torch.tensor(modes["means"], dtype=torch.float64)
    which = torch.randint(len(means), (n,), generator=rng)
    return (means[which] + modes["std"] * torch.randn(n, 2, generator=rng, dtype=torch.float64)).numpy()


def load_data(cfg: dict) -> tuple[np.ndarray, dict | None, str]:
    """The points, the mixture's modes when the data is a built-in mixture, and a name for both."""
    if cfg["data"] in TOY_DATA:
        modes = TOY_DATA[cfg["data"]]
        modes = modes and {"means": np.array(modes["means"], dtype=np.float64), "std": modes["std"]}
        return toy_points(cfg["data"], make_rng(cfg["data_seed"], "toy")), modes, cfg["data"]
    path = find_data(cfg["data"])
    return load_points(path, cfg["key"]), None, f"{path}:{cfg['key']}"


def find_data(path: str) -> Path:
    """The path as given, else relative to the repository, so the default works from any folder."""
    p = Path(path)
    if not p.exists() and not p.is_absolute() and (ROOT / p).exists():
        p = ROOT / p
    return p


def load_points(path: str | Path, key: str) -> np.ndarray:
    """The N×2 float64 array stored under `key`, or a UserError that says what is wrong."""
    path = find_data(str(path))
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to MATLAB v7.3, which is HDF5
        raise UserError(f"{path} is a MATLAB v7.3 (HDF5) file; save it with save(..., '-v7') to read it here") from None
    except Exception as e:  # noqa: BLE001 - scipy raises many kinds for a file that is not a MAT file
        raise UserError(f"{path} is not a MATLAB .mat file ({' '.join(str(e).split())})") from None
    names = sorted(k for k in mat if not k.startswith("__"))
    if key not in names:
        raise UserError(f"{path} has no variable '{key}'; it has: {', '.join(names) or 'none'} (choose with --key)")
    x = mat[key].toarray() if scipy.sparse.issparse(mat[key]) else mat[key]
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iuf":
        raise UserError(f"{path}:{key} is not a numeric array (found {getattr(x, 'dtype', type(x))}); expected N×2 points")
    if x.ndim != 2 or x.shape[1] != 2:
        raise UserError(f"{path}:{key} has shape {'×'.join(map(str, x.shape))}; expected N×2 (one point per row)")
    bad_rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad_rows):
        raise UserError(f"{path}:{key} has {len(bad_rows)} rows with NaN or Inf (first: row {bad_rows[0] + 1}); expected finite points")
    if len(np.unique(x, axis=0)) < 2:
        raise UserError(f"{path}:{key} holds {len(x)} copies of a single point; there is no distribution to learn")
    return x.astype(np.float64)


def split_points(points: np.ndarray, train_size: int, test_size: int, seed: int, source: str = "data"):
    """Seeded shuffle, then the first `train_size` rows train and the next `test_size` (0: all
    the rest) test. The file's rows are in cluster order: unshuffled, the test set would be one
    cluster."""
    n = len(points)
    if train_size >= n:
        raise UserError(f"{source} has {n} rows, not more than --train-size {train_size}: none would be left to test on")
    test_size = test_size or n - train_size
    if train_size + test_size > n:
        raise UserError(f"{source} has {n} rows, fewer than --train-size {train_size} + --test-size {test_size}")
    if test_size > MAX_TEST_SIZE:
        raise UserError(f"a test set of {test_size} points would make every exact W1 take minutes; "
                        f"give --test-size {MAX_TEST_SIZE} or less")
    if test_size > train_size:  # the noise floor compares the test set with training samples of its size
        raise UserError(f"--test-size {test_size} is larger than --train-size {train_size}; "
                        "give a --test-size up to the training size")
    order = torch.randperm(n, generator=make_rng(seed, "split")).numpy()
    return points[order[:train_size]], points[order[train_size:train_size + test_size]]


# ----------------------------------------------------------------------------------------------
# Models: the report's MLPs, noise_dim -> 256 -> 64 -> 2 and 2 -> 256 -> 64 -> 1.
# ----------------------------------------------------------------------------------------------

HIDDEN = (256, 64)
CRITIC_SIZES = (2, *HIDDEN, 1)


def generator_sizes(noise_dim: int) -> tuple[int, ...]:
    return (noise_dim, *HIDDEN, 2)


def torch_module(sizes: tuple[int, ...], sigmoid: bool = False, device=None) -> nn.Sequential:
    """The plain nn.Sequential(Linear, ReLU, ..., Linear[, Sigmoid]) whose state_dict keys
    ('0.weight', '0.bias', ..., '4.bias') our parameter dicts use, and which loads them."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out, device=device), nn.ReLU()]
    return nn.Sequential(*layers[:-1], *([nn.Sigmoid()] if sigmoid else []))


# The architecture that functional_call runs our dicts through, on the meta device so it holds
# no numbers. functional_call swaps its tensors for ours and nn.Linear.forward reads only weight
# and bias, so this one skeleton serves both networks at any noise dimension. It is built here,
# not in the step: torch.compile cannot trace the construction of an nn.Parameter.
SKELETON = torch_module((1, 1, 1, 1), device="meta")


def mlp(params: dict, x: torch.Tensor) -> torch.Tensor:
    return functional_call(SKELETON, params, (x,))


def generator(g_params: dict, z: torch.Tensor) -> torch.Tensor:
    return mlp(g_params, z)


def critic(d_params: dict, x: torch.Tensor) -> torch.Tensor:
    """The critic's score per point. For GAN it is the logit: D(x) = sigmoid(score), which is the
    report's final Sigmoid layer (it has no parameters, so the saved dict loads either way)."""
    return mlp(d_params, x).squeeze(-1)


def init_mlp(sizes: tuple[int, ...], rng: torch.Generator, scheme: str = "torch",
             dtype: torch.dtype = torch.float32) -> dict:
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        if scheme == "torch":  # what nn.Linear does: kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in))
            bound = fan_in ** -0.5
            w = (2 * torch.rand(fan_out, fan_in, generator=rng, dtype=dtype) - 1) * bound
            b = (2 * torch.rand(fan_out, generator=rng, dtype=dtype) - 1) * bound
        elif scheme == "kaiming":  # He et al. for ReLU layers: keeps activations' scale with depth
            w = torch.randn(fan_out, fan_in, generator=rng, dtype=dtype) * math.sqrt(2 / fan_in)
            b = torch.zeros(fan_out, dtype=dtype)
        else:
            raise ValueError(f"unknown init scheme {scheme!r}")
        params[f"{2 * i}.weight"], params[f"{2 * i}.bias"] = w, b
    return params


# ----------------------------------------------------------------------------------------------
# Objectives. The three variants differ here and in update_critic's clipping, nowhere else.
# ----------------------------------------------------------------------------------------------

def gradient_penalty(d_params: dict, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """E[(‖∇ₓ D(x̂)‖₂ − 1)²] on x̂ = εx + (1 − ε)G(z).

    Rows do not interact, so the gradient of the summed scores gives every row's ∇ₓ D at once.
    Taken with torch.func.grad inside the parameter gradient, it differentiates twice and compiles
    (autograd.grad(create_graph=True) followed by .backward() does not)."""
    x_hat = eps * real + (1 - eps) * fake
    grad_x = grad(lambda x: critic(d_params, x).sum())(x_hat)
    return ((torch.linalg.vector_norm(grad_x, dim=-1) - 1) ** 2).mean()


def critic_loss(d_params: dict, real, fake, eps, hyper: dict, variant: str):
    real_score, fake_score = critic(d_params, real), critic(d_params, fake)
    if variant == "gan":  # −[log D(x) + log(1 − D(G(z)))], from the logits so it never takes log(0)
        loss = -(F.logsigmoid(real_score).mean() + F.logsigmoid(-fake_score).mean())
    else:  # −(E D(x) − E D(G(z))): maximise the critic's estimate of the Wasserstein-1 distance
        loss = fake_score.mean() - real_score.mean()
    aux = {}
    if variant == "wgan_gp":
        aux["penalty"] = gradient_penalty(d_params, real, fake, eps)
        loss = loss + hyper["gp_weight"] * aux["penalty"]
    return loss, {"d_loss": loss, **aux}


def generator_loss(g_params: dict, d_params: dict, z, variant: str, gan_loss: str = "minimax"):
    fake_score = critic(d_params, generator(g_params, z))
    if variant != "gan":
        return -fake_score.mean()
    if gan_loss == "minimax":  # minimise log(1 − D(G(z))), the report's objective
        return F.logsigmoid(-fake_score).mean()
    return -F.logsigmoid(fake_score).mean()  # maximise log D(G(z)): strong gradients early on


def clip_params(params: dict, c: torch.Tensor) -> dict:
    return {k: v.clamp(-c, c) for k, v in params.items()}


# ----------------------------------------------------------------------------------------------
# Optimisers: pure init/update pairs (optax style) whose numbers match torch.optim. The learning
# rate lives in the state as a tensor, so changing it between epochs recompiles nothing.
# ----------------------------------------------------------------------------------------------

class Optimizer(NamedTuple):
    init: Callable    # (params, lr) -> state
    update: Callable  # (grads, state, params) -> (params, state)


def tree_map(f: Callable, *trees: dict) -> dict:
    return {k: f(*(t[k] for t in trees)) for k in trees[0]}


def lr_state(params: dict, lr) -> torch.Tensor:
    p = next(iter(params.values()))
    return torch.as_tensor(lr, dtype=p.dtype, device=p.device)


def with_weight_decay(grads: dict, params: dict, weight_decay: float) -> dict:
    return tree_map(lambda g, p: g + weight_decay * p, grads, params) if weight_decay else grads


def sgd(momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> Optimizer:
    def init(params, lr):
        state = {"lr": lr_state(params, lr)}
        if momentum:  # a zero buffer makes the first step buf = g, as torch.optim's clone does
            state["momentum_buffer"] = tree_map(torch.zeros_like, params)
        return state

    def update(grads, state, params):
        grads = with_weight_decay(grads, params, weight_decay)
        state = dict(state)
        if momentum:
            state["momentum_buffer"] = buf = tree_map(lambda b, g: momentum * b + g, state["momentum_buffer"], grads)
            grads = tree_map(lambda g, b: g + momentum * b, grads, buf) if nesterov else buf
        return tree_map(lambda p, g: p - state["lr"] * g, params, grads), state

    return Optimizer(init, update)


def rmsprop(alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0, centered: bool = False,
            weight_decay: float = 0.0) -> Optimizer:
    def init(params, lr):
        state = {"lr": lr_state(params, lr), "square_avg": tree_map(torch.zeros_like, params)}
        if centered:
            state["grad_avg"] = tree_map(torch.zeros_like, params)
        if momentum:
            state["momentum_buffer"] = tree_map(torch.zeros_like, params)
        return state

    def update(grads, state, params):
        grads = with_weight_decay(grads, params, weight_decay)
        state = dict(state)
        state["square_avg"] = sq = tree_map(lambda s, g: alpha * s + (1 - alpha) * g * g, state["square_avg"], grads)
        if centered:
            state["grad_avg"] = ga = tree_map(lambda a, g: a + (1 - alpha) * (g - a), state["grad_avg"], grads)
            denom = tree_map(lambda s, a: (s - a * a).sqrt() + eps, sq, ga)
        else:
            denom = tree_map(lambda s: s.sqrt() + eps, sq)
        step = tree_map(torch.div, grads, denom)
        if momentum:
            state["momentum_buffer"] = step = tree_map(lambda b, s: momentum * b + s, state["momentum_buffer"], step)
        return tree_map(lambda p, s: p - state["lr"] * s, params, step), state

    return Optimizer(init, update)


def adam(betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    b1, b2 = betas

    def init(params, lr):
        zeros = partial(tree_map, torch.zeros_like, params)
        return {"lr": lr_state(params, lr), "step": torch.zeros_like(lr_state(params, 0)),
                "exp_avg": zeros(), "exp_avg_sq": zeros()}

    def update(grads, state, params):
        grads = with_weight_decay(grads, params, weight_decay)
        step = state["step"] + 1
        m = tree_map(lambda m, g: m + (1 - b1) * (g - m), state["exp_avg"], grads)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["exp_avg_sq"], grads)
        step_size = state["lr"] / (1 - b1 ** step)
        root_correction = (1 - b2 ** step).sqrt()
        new = tree_map(lambda p, m, v: p - step_size * m / (v.sqrt() / root_correction + eps), params, m, v)
        return new, {"lr": state["lr"], "step": step, "exp_avg": m, "exp_avg_sq": v}

    return Optimizer(init, update)


def make_optimizer(cfg: dict) -> Optimizer:
    if cfg["optimizer"] == "sgd":
        return sgd(cfg["momentum"], cfg["nesterov"], cfg["weight_decay"])
    if cfg["optimizer"] == "rmsprop":
        return rmsprop(cfg["rms_alpha"], cfg["opt_eps"], cfg["momentum"], cfg["centered"], cfg["weight_decay"])
    return adam(cfg["betas"], cfg["opt_eps"], cfg["weight_decay"])


# ----------------------------------------------------------------------------------------------
# The training step
# ----------------------------------------------------------------------------------------------

def init_state(cfg: dict, rng: torch.Generator, device, dtype=torch.float32) -> dict:
    """Everything a step reads and writes: both networks, both optimiser states, and the
    hyper-parameters as tensors so that changing them recompiles nothing."""
    opt = make_optimizer(cfg)
    g = init_mlp(generator_sizes(cfg["noise_dim"]), rng, cfg["init"], dtype)
    d = init_mlp(CRITIC_SIZES, rng, cfg["init"], dtype)
    g, d = (tree_map(lambda t: t.to(device), p) for p in (g, d))
    hyper = {k: torch.tensor(cfg[k], dtype=dtype, device=device) for k in ("clip", "gp_weight") if k in cfg}
    return {"g": g, "d": d, "g_opt": opt.init(g, cfg["lr"]), "d_opt": opt.init(d, cfg["lr"]), "hyper": hyper}


def make_train_step(cfg: dict) -> Callable:
    """The pure step (state, batch) -> (state, metrics) for cfg's variant.

    batch holds real (n_critic, B, 2), z_critic (n_critic, B, noise_dim), eps (n_critic, B, 1)
    and z_gen (B, noise_dim): each critic update has its own real batch and noise.
    """
    variant, n_critic, opt = cfg["variant"], cfg["n_critic"], make_optimizer(cfg)
    d_grad = grad(partial(critic_loss, variant=variant), has_aux=True)
    g_grad = grad_and_value(partial(generator_loss, variant=variant, gan_loss=cfg.get("gan_loss", "minimax")))

    def update_critic(d, d_opt, g, batch, hyper):
        metrics = []
        for k in range(n_critic):
            fake = generator(g, batch["z_critic"][k])
            grads, aux = d_grad(d, batch["real"][k], fake, batch["eps"][k], hyper)
            d, d_opt = opt.update(grads, d_opt, d)
            if variant == "wgan":  # the Lipschitz constraint by brute force, after every update
                d = clip_params(d, hyper["clip"])
            metrics.append(aux)
        return d, d_opt, tree_map(lambda *m: sum(m) / n_critic, *metrics)

    def update_generator(g, g_opt, d, z):
        grads, loss = g_grad(g, d, z)
        g, g_opt = opt.update(grads, g_opt, g)
        return g, g_opt, loss

    def train_step(state, batch):
        g0, d0, hyper = state["g"], state["d"], state["hyper"]
        # Which version of the other network each update sees is all that the orders change.
        if cfg["order"] == "d-first":
            d, d_opt, aux = update_critic(d0, state["d_opt"], g0, batch, hyper)
            g, g_opt, g_loss = update_generator(g0, state["g_opt"], d, batch["z_gen"])
        elif cfg["order"] == "g-first":
            g, g_opt, g_loss = update_generator(g0, state["g_opt"], d0, batch["z_gen"])
            d, d_opt, aux = update_critic(d0, state["d_opt"], g, batch, hyper)
        else:  # simultaneous, as the report's code: the critic learns from G(z) drawn before G stepped
            g, g_opt, g_loss = update_generator(g0, state["g_opt"], d0, batch["z_gen"])
            d, d_opt, aux = update_critic(d0, state["d_opt"], g0, batch, hyper)
        new_state = {"g": g, "d": d, "g_opt": g_opt, "d_opt": d_opt, "hyper": hyper}
        return new_state, {"g_loss": g_loss, **aux}

    return train_step


# ----------------------------------------------------------------------------------------------
# Distances between point sets: the fit as a number, not only a picture
# ----------------------------------------------------------------------------------------------

def wasserstein1(x: np.ndarray, y: np.ndarray) -> float:
    """Exact Wasserstein-1 distance between two equal-size point sets: the mean Euclidean distance
    of the optimal one-to-one matching (O(n³), about 0.1 s for 1192 points)."""
    cost = cdist(x, y)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ over all pairs of the two empirical distributions:
    zero exactly when the sets are equal as distributions; O(n²), cheap enough for every epoch."""
    return energy_from(cdist(x, y), cdist(x, x), cdist(y, y).mean())


def energy_from(d_xy: np.ndarray, d_xx: np.ndarray, y_spread: float) -> float:
    return float(2 * d_xy.mean() - d_xx.mean() - y_spread)


def knn_radii(d_self: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point, from the set's distance matrix
    (whose zero diagonal is every point's nearest)."""
    return np.partition(d_self, k, axis=1)[:, k]


def precision_recall(x: np.ndarray, y: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Precision and recall of samples x against data y (Kynkäänniemi et al., 2019): a set's
    manifold is the union of balls around its points reaching to their k-th nearest neighbour;
    precision is the fraction of x inside y's manifold (realistic samples), recall the fraction
    of y inside x's (covered data)."""
    return precision_recall_from(cdist(x, y), knn_radii(cdist(x, x), k), knn_radii(cdist(y, y), k))


def precision_recall_from(d_xy: np.ndarray, x_radii: np.ndarray, y_radii: np.ndarray) -> tuple[float, float]:
    precision = (d_xy <= y_radii[None, :]).any(axis=1).mean()
    recall = (d_xy <= x_radii[:, None]).any(axis=0).mean()
    return float(precision), float(recall)


def describe_test_set(test: np.ndarray, k: int = 3) -> dict:
    """What every epoch's comparison needs of the test set, computed once."""
    d = cdist(test, test)
    return {"points": test, "spread": float(d.mean()), "radii": knn_radii(d, k), "k": k}


def sample_metrics(fake: np.ndarray, test: dict) -> dict:
    """The cheap distances, every epoch: energy distance, precision and recall to the test set,
    from one pass over the pairwise distances."""
    d_ft, d_ff = cdist(fake, test["points"]), cdist(fake, fake)
    precision, recall = precision_recall_from(d_ft, knn_radii(d_ff, test["k"]), test["radii"])
    return {"energy": energy_from(d_ft, d_ff, test["spread"]), "precision": precision, "recall": recall}


def mode_metrics(points: np.ndarray, means: np.ndarray, std: float) -> dict:
    """How a sample covers a mixture of isotropic Gaussians (PacGAN, VEEGAN): a point is of high
    quality within 3 standard deviations of its nearest mode; `modes` counts the modes with at
    least one such point, `hq` is their fraction of all points, and `reverse_kl` is
    KL(modes of the high-quality points ‖ uniform over modes) (NaN when there are none)."""
    d = cdist(points, means)
    nearest, good = d.argmin(axis=1), d.min(axis=1) <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(means))
    p = counts / max(counts.sum(), 1)
    reverse_kl = float(np.sum(xlogy(p, p * len(means)))) if counts.sum() else math.nan  # 0 log 0 = 0
    return {"modes": int((counts > 0).sum()), "hq": float(good.mean()), "reverse_kl": reverse_kl}


def noise_floor(train: np.ndarray, test: np.ndarray, rng: torch.Generator, draws: int = 10,
                modes: dict | None = None) -> dict:
    """What a perfect generator would score: the metrics of samples of the training set of the
    test set's size against the test set (mean, and standard deviation over draws)."""
    reference = describe_test_set(test)
    scores = []
    for _ in range(draws):
        sample = train[torch.randperm(len(train), generator=rng)[: len(test)].numpy()]
        scores.append({"w1": wasserstein1(sample, test), **sample_metrics(sample, reference),
                       **(mode_metrics(sample, **modes) if modes else {})})
    floor = {"draws": draws}
    for key in scores[0]:
        values = [sc[key] for sc in scores]
        floor[key], floor[f"{key}_sd"] = float(np.mean(values)), float(np.std(values))
    return floor


def epochs_to_fit(epochs: list[int], values: list[float], threshold: float) -> int | None:
    """The first epoch from which the metric stays at or below `threshold` (None if it ends above)."""
    fit = None
    for epoch, value in zip(epochs, values):
        if value > threshold:
            fit = None
        elif fit is None:
            fit = epoch
    return fit


# ----------------------------------------------------------------------------------------------
# Ensembles: several models (seeds, or values of a hyper-parameter) trained in one step by
# torch.func.vmap over stacked states. Each member draws its batches and noise from its own seed,
# so member i follows the same trajectory as a run of its own with that config.
# ----------------------------------------------------------------------------------------------

VARIABLE = ("lr", "gp_weight", "clip")  # hyper-parameters that live in the state as tensors


def member_configs(cfg: dict) -> list[dict]:
    """One config per model: seeds --seed … --seed + seeds − 1, each with every --vary value."""
    name, values = cfg["vary"] or (None, [None])
    return [{**cfg, "seed": seed, "seeds": 1, "vary": None, **({name: value} if name else {})}
            for seed in range(cfg["seed"], cfg["seed"] + cfg["seeds"]) for value in values]


def member_name(member: dict, cfg: dict) -> str:
    name = f"seed{member['seed']}"
    return f"{name}_{cfg['vary'][0]}{member[cfg['vary'][0]]:g}" if cfg["vary"] else name


def tree_stack(trees: list):
    if isinstance(trees[0], dict):
        return {k: tree_stack([t[k] for t in trees]) for k in trees[0]}
    return torch.stack(trees)


def tree_map_nested(f: Callable, tree):
    return {k: tree_map_nested(f, v) for k, v in tree.items()} if isinstance(tree, dict) else f(tree)


def tree_index(tree, i: int):
    return tree_map_nested(lambda x: x[i], tree)


def init_members(members: list[dict], device, dtype=torch.float32) -> dict:
    states = [init_state(m, make_rng(m["seed"], "init"), device, dtype) for m in members]
    return states[0] if len(states) == 1 else tree_stack(states)


def members_batches(train: torch.Tensor, members: list[dict], steps: int, rngs: list, device) -> dict:
    """An epoch of batches per member, stacked on dimension 1 so that batches[k][i] is step i of
    every member."""
    per_member = [epoch_batches(train, m, steps, rng, device) for m, rng in zip(members, rngs)]
    if len(per_member) == 1:
        return per_member[0]
    return {k: torch.stack([b[k] for b in per_member], dim=1) for k in per_member[0]}


def make_members_step(cfg: dict, n_members: int) -> Callable:
    step = make_train_step(cfg)
    return step if n_members == 1 else vmap(step)


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------

def epoch_batches(train: torch.Tensor, cfg: dict, steps: int, rng: torch.Generator, device) -> dict:
    """One epoch of randomness, drawn at once outside the step: a reshuffle of the training
    points cut into `steps` groups of n_critic full batches, and all the noise.

    The few points left over (7000 mod 64 = 24 with the defaults) sit this epoch out. A fresh
    shuffle every epoch lets every point take part, and fixed shapes mean the compiled step is
    never recompiled for a short last batch."""
    B, K, nz = cfg["batch_size"], cfg["n_critic"], cfg["noise_dim"]
    order = torch.randperm(len(train), generator=rng)[: steps * K * B]
    batches = {
        "real": train[order].reshape(steps, K, B, 2),
        "z_critic": torch.randn(steps, K, B, nz, generator=rng),
        "eps": torch.rand(steps, K, B, 1, generator=rng),
        "z_gen": torch.randn(steps, B, nz, generator=rng),
    }
    return {k: v.to(device) for k, v in batches.items()}


def uses_cuda_graphs(device) -> bool:
    return torch.device(device).type == "cuda"


def compile_step(step: Callable, device="cpu") -> Callable:
    """torch.compile the step as one graph with static shapes.

    A step at batch 64 is small enough for per-kernel overhead to matter. On CUDA the graph is
    replayed as a CUDA graph (what mode="reduce-overhead" does): one launch per step. On the CPU
    the kernels are called from generated C++ instead of Python (cpp_wrapper): measured 15-20 %
    more steps/s for the report's loop.

    Every step that make_train_step returns shares one code object, and dynamo counts compiled
    versions per code object: a process that trains several models one after the other (tests,
    sweeps) would reach its recompile limit. Each new step therefore starts from an empty cache."""
    torch._dynamo.reset()
    options = {"triton.cudagraphs": True} if uses_cuda_graphs(device) else {"cpp_wrapper": True}
    return torch.compile(step, fullgraph=True, dynamic=False, options=options)


def run_epoch(step: Callable, state: dict, batches: dict, steps: int, cuda_graphs: bool = False) -> tuple[dict, dict]:
    """`steps` steps over one epoch's batches. The losses stay on the device until the epoch
    ends and come back once, as epoch means (one per member): no step waits for the device.

    A CUDA graph writes every replay's outputs into the same memory: the losses kept for the
    epoch mean and the state that outlives the epoch are copied out of it."""
    history = []
    for i in range(steps):
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        state, metrics = step(state, {k: v[i] for k, v in batches.items()})
        history.append({k: v.clone() for k, v in metrics.items()} if cuda_graphs else metrics)
    if cuda_graphs:
        state = tree_map_nested(torch.clone, state)
    return state, {k: torch.stack([m[k] for m in history]).mean(0).cpu() for k in history[0]}


def healthy_members(losses: dict, state: dict, n_members: int) -> torch.Tensor:
    """Per member: are its epoch's losses and its parameters all finite?"""
    leaves = [*losses.values(), *state["g"].values(), *state["d"].values()]
    return torch.stack([x.isfinite().reshape(n_members, -1).all(1).cpu() for x in leaves]).all(0)


def plot_window(points: np.ndarray, margin: float = 0.2) -> tuple[float, float, float, float]:
    """The data's bounding box with room for stray samples on every side (a fraction of its
    larger side); fixed for a whole run so that the frames of a GIF do not jump."""
    lo, hi = points.min(0), points.max(0)
    pad = (hi - lo).max() * margin
    return (lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad)


def critic_landscape(d_params: dict, window, variant: str, n: int = 120) -> np.ndarray:
    """The critic over an n×n grid of the window: D(x) for GAN, the critic's value otherwise."""
    p = next(iter(d_params.values()))
    xs = torch.linspace(window[0], window[1], n, dtype=p.dtype, device=p.device)
    ys = torch.linspace(window[2], window[3], n, dtype=p.dtype, device=p.device)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    score = critic(d_params, grid)
    values = torch.sigmoid(score) if variant == "gan" else score
    return values.reshape(n, n).cpu().numpy()


def is_due(every: int, epoch: int, last: int) -> bool:
    return epoch == last or (every > 0 and epoch % every == 0)


MODE_COLUMNS = ["modes", "hq", "reverse_kl"]


def metric_columns(variant: str, modes: bool = False) -> list[str]:
    return ["epoch", "g_loss", "d_loss", *(["penalty"] if variant == "wgan_gp" else []),
            "energy", "precision", "recall", *(MODE_COLUMNS if modes else []), "w1", "seconds"]


def make_recorder(cfg: dict, run: Path, test_np: np.ndarray, modes: dict | None, window, summary: dict, device,
                  verbose: bool = True):
    """What happens after each epoch of one model: the distances to the test set, the frame, the
    metrics row, the parameters and the summary, so that its run folder is complete after every
    epoch.

    Returns `record(epoch, state, losses, seconds) -> row`, which also keeps `summary` (the run's,
    or an ensemble member's) and its summary.json up to date, and `close()`. (A worker thread
    that wrote the epochs while the next one trained gained nothing on two cores: training uses
    both.)"""
    floor = summary["noise_floor"]
    eval_z = torch.randn(len(test_np), cfg["noise_dim"], generator=make_rng(cfg["seed"], "eval")).to(device)
    test = describe_test_set(test_np)
    w1_history: list[tuple[int, float]] = []
    draw_frame = make_frame_writer(window, test_np, TITLES[cfg["variant"]], cfg["variant"] == "gan") \
        if cfg["frame_every"] else None
    metrics_file = open(run / "metrics.csv", "w", newline="", buffering=1)
    writer = csv.DictWriter(metrics_file, fieldnames=metric_columns(cfg["variant"], modes is not None))
    writer.writeheader()

    def record(epoch: int, state: dict, losses: dict, seconds: float) -> dict:
        t0 = time.perf_counter()
        due_frame = draw_frame and is_due(cfg["frame_every"], epoch, cfg["epochs"])
        with torch.no_grad():
            fake = generator(state["g"], eval_z).double().cpu().numpy()
            landscape = critic_landscape(state["d"], window, cfg["variant"]) if due_frame else None
        row = {"epoch": epoch, **{k: float(v) for k, v in losses.items()}, **sample_metrics(fake, test),
               **(mode_metrics(fake, **modes) if modes else {}),
               "w1": wasserstein1(fake, test_np) if due_frame or is_due(cfg["eval_every"], epoch, cfg["epochs"]) else "",
               "seconds": round(seconds, 4)}
        if row["w1"] != "":
            w1_history.append((epoch, row["w1"]))
        if due_frame:
            atomic_write(run / "frames" / f"epoch_{epoch:04d}.png",
                         lambda tmp: draw_frame(tmp, epoch, fake, landscape, row, floor))
        save_params(run / "generator.pt", state["g"])
        save_params(run / "critic.pt", state["d"])
        writer.writerow(row)
        summary.update(epochs_done=epoch, final=row, eval_s=round(summary["eval_s"] + time.perf_counter() - t0, 3),
                       epochs_to_fit=epochs_to_fit(*zip(*w1_history), cfg["fit_factor"] * floor["w1"]))
        write_json(run / "summary.json", summary)
        if verbose:
            report_epoch(epoch, cfg["epochs"], row, floor)
        return row

    return record, metrics_file.close


def make_ensemble_log(run: Path, variant: str, modes: bool, floor: dict):
    """ensemble.csv: every metric as mean and standard error over the members, per epoch."""
    metrics = [c for c in metric_columns(variant, modes) if c not in ("epoch", "seconds")]
    log = open(run / "ensemble.csv", "w", newline="", buffering=1)
    writer = csv.DictWriter(log, fieldnames=["epoch", "members", *(f"{m}_{s}" for m in metrics for s in ("mean", "se"))])
    writer.writeheader()

    def record(epoch: int, rows: list[dict], epochs: int) -> dict:
        row = {"epoch": epoch, "members": len(rows)}
        for m in metrics:
            values = [r[m] for r in rows if r.get(m, "") != ""]
            row[f"{m}_mean"], row[f"{m}_se"] = mean_and_se(values) if values else ("", "")
        writer.writerow(row)
        if row["w1_mean"] != "":
            say(f"epoch {epoch:4d}/{epochs}  W1 {row['w1_mean']:.4f} ± {row['w1_se']:.4f}"
                f"{times_floor(row['w1_mean'], floor)} over {len(rows)} members")
        return row

    return record, log.close


def mean_and_se(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error (sample standard deviation / √n; 0 for one value)."""
    se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(np.mean(values)), se


def train(cfg: dict) -> dict:
    """Train the model, or the ensemble of models, that cfg describes and write the run folder;
    returns the run's summary.

    An interrupted or diverged run keeps everything up to its last good epoch: metrics rows,
    frames, and that epoch's parameters. An ensemble writes one run folder per member inside
    its own, and ensemble.csv with the mean and standard error over members."""
    device = resolve_device(cfg["device"])
    points, modes, source = load_data(cfg)
    train_np, test_np = split_points(points, cfg["train_size"], cfg["test_size"], cfg["data_seed"], source)
    members = member_configs(cfg)
    n = len(members)
    run = prepare_run_dir(cfg["out"])
    member_dirs = [run] if n == 1 else [prepare_run_dir(str(run / member_name(m, cfg))) for m in members]
    floor = noise_floor(train_np, test_np, make_rng(cfg["data_seed"], "floor"), modes=modes)
    steps = cfg["train_size"] // (cfg["batch_size"] * cfg["n_critic"])
    data_file = None if cfg["data"] in TOY_DATA else find_data(cfg["data"])
    setting = {"data": str(data_file or cfg["data"]), "data_sha256": data_file and sha256(data_file),
               "device": str(device), "steps_per_epoch": steps, "versions": versions()}
    write_json(run / "config.json", {**cfg, **setting, "members": [member_name(m, cfg) for m in members]} if n > 1
               else {**cfg, **setting})
    summary = {"status": "running", "epochs_done": 0, "noise_floor": floor, "warm_up_s": 0.0, "train_s": 0.0, "eval_s": 0.0}
    member_summaries = [summary] if n == 1 else [{"status": "running", "epochs_done": 0, "noise_floor": floor, "eval_s": 0.0}
                                                 for _ in members]
    for m, d, s in zip(members, member_dirs, member_summaries):
        if n > 1:
            write_json(d / "config.json", {**m, **setting, "out": str(d)})
        write_json(d / "summary.json", s)

    state = init_members(members, device)
    step = make_members_step(cfg, n)
    cuda_graphs = not cfg["no_compile"] and uses_cuda_graphs(device)
    if not cfg["no_compile"]:
        step = compile_step(step, device)
    train_t = torch.as_tensor(train_np, dtype=torch.float32)
    rngs = [make_rng(m["seed"], "train") for m in members]
    window = plot_window(np.vstack([train_np, test_np]))
    recorders = [make_recorder(m, d, test_np, modes, window, s, device, verbose=n == 1)
                 for m, d, s in zip(members, member_dirs, member_summaries)]
    ensemble = make_ensemble_log(run, cfg["variant"], modes is not None, floor) if n > 1 else None

    def record(epoch: int, state: dict, losses: dict, seconds: float) -> None:
        rows = [rec(epoch, state if n == 1 else tree_index(state, i), losses if n == 1 else tree_index(losses, i), seconds)
                for i, (rec, _) in enumerate(recorders)]
        if ensemble:
            summary.update(epochs_done=epoch, final=ensemble[0](epoch, rows, cfg["epochs"]),
                           eval_s=round(sum(s["eval_s"] for s in member_summaries), 3))
            write_json(run / "summary.json", summary)

    what = f"{n} models ({', '.join(member_name(m, cfg) for m in members)}) in one vmapped step" if n > 1 else "one model"
    say(f"lab5 {cfg['variant']}: {what}; {len(train_np)} train / {len(test_np)} test points from {source}, "
        f"{device}, {'eager' if cfg['no_compile'] else 'compiled'}, {steps} steps per epoch -> {run}/")
    say(f"noise floor (test set vs training samples of its size): W1 {floor['w1']:.4f} ± {floor['w1_sd']:.4f}, "
        f"energy {floor['energy']:.5f}")
    started, status, epoch = time.perf_counter(), "failed", 0  # "failed" stays only if something crashes
    try:
        with interrupts_held():
            record(0, state, {}, 0.0)
        # One step on throw-away noise triggers compilation, so that epoch 1 times training only.
        t0 = time.perf_counter()
        warm_up = members_batches(train_t, members, 1, [torch.Generator().manual_seed(0) for _ in members], device)
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        step(state, {k: v[0] for k, v in warm_up.items()})
        summary["warm_up_s"] = round(time.perf_counter() - t0, 3)
        for epoch in range(1, cfg["epochs"] + 1):
            t0 = time.perf_counter()
            new_state, losses = run_epoch(step, state, members_batches(train_t, members, steps, rngs, device), steps,
                                          cuda_graphs)
            seconds = time.perf_counter() - t0
            summary["train_s"] = round(summary["train_s"] + seconds, 3)
            healthy = healthy_members(losses, new_state, n)
            if not healthy.all():
                status = "diverged"
                sick = [member_name(m, cfg) for m, ok in zip(members, healthy) if not ok]
                summary["diverged_members"] = sick if n > 1 else None
                break
            state = new_state
            with interrupts_held():
                record(epoch, state, losses, seconds)
        else:
            status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        for (_, close), d, s in zip(recorders, member_dirs, member_summaries):
            close()
            s["status"] = status
            write_json(d / "summary.json", s)
        if ensemble:
            ensemble[1]()
        summary.update(status=status, wall_s=round(time.perf_counter() - started, 2))
        write_json(run / "summary.json", summary)
    if status == "completed":
        say(f"done in {summary['wall_s']:.1f} s (compile warm-up {summary['warm_up_s']:.1f} s, training "
            f"{summary['train_s']:.1f} s, distances and frames {summary['eval_s']:.1f} s): {run}/")
    elif status != "failed":
        which = f" ({', '.join(summary['diverged_members'])})" if summary.get("diverged_members") else ""
        say(f"{status}{which} in epoch {epoch}: {run}/ keeps epochs 0-{summary['epochs_done']} "
            "(metrics, frames, and the parameters of the last one)", err=True)
    return summary


def times_floor(w1: float, floor: dict) -> str:
    return f" ({w1 / floor['w1']:.1f}× floor)" if floor["w1"] > 0 else ""


def report_epoch(epoch: int, epochs: int, row: dict, floor: dict) -> None:
    losses = "".join(f"  {k} {row[k]:+.4f}" for k in ("g_loss", "d_loss", "penalty") if k in row)
    w1 = f"  W1 {row['w1']:.4f}{times_floor(row['w1'], floor)}" if row["w1"] != "" else ""
    line = (f"epoch {epoch:4d}/{epochs}{losses}  energy {row['energy']:.5f}  precision {row['precision']:.2f}  "
            f"recall {row['recall']:.2f}{w1}  {row['seconds']:.2f} s")
    if w1 or epoch == 1:
        say(line)
    elif sys.stdout.isatty():
        print(line, end="\r", flush=True)


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------

RUN_FILES = ("config.json", "metrics.csv", "summary.json", "ensemble.csv", "generator.pt", "critic.pt", "curves.png")


def is_run_dir(path: Path) -> bool:
    """Does this folder hold a lab5 run (a config.json that names a variant)?"""
    try:
        return "variant" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def prepare_run_dir(out: str) -> Path:
    """Create the run folder, or clear one that an earlier lab5 run left (its files, frames and
    member folders, nothing else), so that old frames do not end up in a new GIF. A folder that
    holds anything but a lab5 run is refused rather than written into."""
    if not out.strip():
        raise UserError("--out is empty; give the folder for the run")
    run = Path(out)
    if run.exists() and not run.is_dir():
        raise UserError(f"--out {run} is a file; give a folder for the run")
    leftovers = [p for p in run.iterdir() if not (p.name == "frames" and p.is_dir() and not any(p.iterdir()))] \
        if run.exists() else []
    if leftovers and not is_run_dir(run):
        raise UserError(f"--out {run} holds files that are not a lab5 run; give a new or empty folder")
    try:
        (run / "frames").mkdir(parents=True, exist_ok=True)
        for old in [*run.glob("frames/epoch_*.png"), *(run / name for name in RUN_FILES)]:
            old.unlink(missing_ok=True)
        for member in [d for d in run.iterdir() if d.is_dir() and is_run_dir(d)]:
            shutil.rmtree(member)
    except OSError as e:
        raise UserError(f"cannot write the run folder {run}: {e.strerror}") from None
    return run


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file beside `path`, then rename it: an interrupt or a crash never
    leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def save_params(path: Path, params: dict) -> None:
    """torch.save a dict that nn.Sequential.load_state_dict accepts."""
    atomic_write(path, lambda tmp: torch.save({k: v.detach().cpu().clone() for k, v in params.items()}, tmp))


@contextmanager
def interrupts_held():
    """A Ctrl-C while an epoch's files are being written takes effect once they are written, so
    that the files of a run folder always come from the same epoch."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}


def say(message: str, err: bool = False) -> None:
    print(message, file=sys.stderr if err else sys.stdout, flush=True)


EXIT_CODES = {"completed": 0, "usage": 2, "diverged": 3, "interrupted": 130}  # a crash (a bug) exits 1


def main(variant: str, argv: list[str] | None = None) -> int:
    """Entry point of the variant scripts; returns the exit status (EXIT_CODES)."""
    try:
        summary = train(parse_config(variant, argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CODES["usage"]
    except KeyboardInterrupt:  # before the first epoch: the run folder holds at most its config
        print("interrupted", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    return EXIT_CODES[summary["status"]]
