"""lab5: GAN, WGAN and WGAN-GP learn a 2-D point cloud, in functional PyTorch.

Top to bottom as the data flows: config, data, models, objectives, optimisers, step, ensembles,
loop, outputs. Parameters are dicts run through torch.func.functional_call, gradients come from
torch.func.grad, optimisers are pure init/update pairs, and the step (state, batch) -> (state,
metrics) is vmapped over an ensemble (one model is an ensemble of one) and compiled once. All
randomness is drawn outside the step from seeded generators, like JAX keys."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vmap

from data.points import TOY_DATA, UserError, load_points, size, split_points, toy_points
from plots import console, measures, recorder, records
from plots.frames import plot_window

ROOT = Path(__file__).resolve().parent
VARIANTS, OPTIMIZERS = ("gan", "wgan", "wgan_gp"), ("rmsprop", "sgd", "adam")
TITLES = {"gan": "GAN", "wgan": "WGAN", "wgan_gp": "WGAN-GP"}

# ---- Config: each flag once, with its default, its help and what a valid value is -----------

class Flag(NamedTuple):
    default: object  # the value, or {variant: value} where the variants differ
    help: str
    group: str
    must: str | None = None  # what a valid value is: a key of MUST
    choices: tuple | None = None
    variants: tuple = VARIANTS  # the variants that have it
    optimizers: tuple = OPTIMIZERS  # a value given for another optimiser is an error
    parse: Callable | None = None  # how to read it, where the default's type does not say

MAX_HIDDEN, WIDTHS = 8, "1 to 8 widths in 1..4096"
MUST = {"a positive integer": lambda v: v >= 1, "a non-negative integer": lambda v: v >= 0,
        "a positive number": lambda v: math.isfinite(v) and v > 0,
        "a non-negative number": lambda v: math.isfinite(v) and v >= 0,
        "a number of at least 1": lambda v: math.isfinite(v) and v >= 1,
        "in [0, 1)": lambda v: 0 <= v < 1, "two in [0, 1)": lambda v: all(0 <= b < 1 for b in v),
        "a count or a fraction in (0, 1)": lambda v: isinstance(v, int) and v >= 1 or 0 < v < 1,
        "0, a count or a fraction in (0, 1)": lambda v: isinstance(v, int) and v >= 0 or 0 < v < 1,
        WIDTHS: lambda v: 1 <= len(v) <= MAX_HIDDEN and all(1 <= w <= 4096 for w in v)}
VARIABLE = ("lr", "gp_weight", "clip", "ema")  # hyper-parameters held in the state as tensors

def parse_vary(text: str) -> tuple[str, list[float]]:
    """'lr=1e-4,3e-4' -> ('lr', [0.0001, 0.0003])"""
    name, _, values = text.partition("=")
    try:
        return name.replace("-", "_"), [float(v) for v in values.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,... with numbers, got {text!r}") \
            from None

def parse_widths(text: str) -> list[int]:
    """'512,512,512' -> [512, 512, 512]: the hidden layers' widths, input side first"""
    try:
        return [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 256,64, got {text!r}") from None

def parse_values(text: str) -> dict[str, float]:
    """'lr=5e-4,gp_weight=0.1' -> {'lr': 0.0005, 'gp_weight': 0.1}"""
    try:
        return {k.replace("-", "_"): float(v) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE,... with numbers, got {text!r}") \
            from None

INT, INT0 = "a positive integer", "a non-negative integer"
NUM, NUM0, FRACTION = "a positive number", "a non-negative number", "in [0, 1)"
SIZE, SIZE0 = "a count or a fraction in (0, 1)", "0, a count or a fraction in (0, 1)"
DATA, LOOP, OPT, RUN = "data", "model and training", "optimiser (both networks)", "run"
ENSEMBLE, RMS = "ensembles: several models in one vmapped step", ("rmsprop",)
# The report fixes RMSprop, lr 1e-4 for both networks, 200 epochs; what it leaves open was
# chosen by a search over seeds, and its literal loop is one command (README, "Defaults").
FLAGS = {
    "data": Flag("data/points.mat", "points: .mat, .npy, .npz, .csv, .tsv, .txt (README); or a toy "
                 "distribution: ring8, grid25, swissroll", DATA),
    "key": Flag(None, "the array in a .mat (default xx) or .npz (default: its only one)", DATA),
    "delimiter": Flag(None, "of a text file's columns: , tab ; space (default: found)", DATA),
    "train_size": Flag(7000 / 8192, "training points, after a seeded shuffle: a count, or a "
                       "fraction of the file's (default: the report's 7000 of 8192)", DATA, SIZE,
                       parse=size),
    "test_size": Flag(0, "held-out points for the distances, as --train-size (0: the rest)",
                      DATA, SIZE0, parse=size),
    "data_seed": Flag(0, "seed of the split, apart from --seed: seeds share one split", DATA, INT0),
    "toy_size": Flag(8192, "points drawn from a toy distribution, before the split", DATA, INT),
    "eval_size": Flag(0, "generated points the mode metrics count on a toy mixture (0: as many "
                      "as test points)", DATA, INT0),
    "epochs": Flag(200, "passes of the critic over the training points", LOOP, INT),
    "batch_size": Flag({"gan": 32, "wgan": 64, "wgan_gp": 16}, "points per critic update", LOOP,
                       INT),
    "n_critic": Flag(1, "critic updates per generator update", LOOP, INT),
    "order": Flag({"gan": "g-first", "wgan": "d-first", "wgan_gp": "g-first"},
                  "who sees whose update: README, Defaults", LOOP,
                  choices=("g-first", "d-first", "simultaneous")),
    "noise_dim": Flag(8, "dimension of the generator's noise z ~ N(0, I)", LOOP, INT),
    "hidden": Flag((256, 64), "hidden layers' widths of both networks (the report's: 256,64)",
                   LOOP, WIDTHS, parse=parse_widths),
    "critic_hidden": Flag(None, "the critic's widths, where they differ from --hidden's", LOOP,
                          WIDTHS, parse=parse_widths),
    "init": Flag({"gan": "torch", "wgan": "torch", "wgan_gp": "kaiming"}, "torch: nn.Linear's; "
                 "kaiming: N(0, 2/fan_in), zero biases", LOOP, choices=("torch", "kaiming")),
    "critic_init": Flag(None, "the critic's initialisation, where it differs from --init's", LOOP,
                        choices=("torch", "kaiming")),
    "seed": Flag(0, "seed of the initialisation, the batches and the noise", LOOP, INT0),
    "ema": Flag(0.99, "decay of the generator's moving average, which is sampled, drawn and "
                "saved (0: none, the generator itself)", LOOP, FRACTION),
    "ema_start": Flag(1, "epoch whose first step starts the average (before: the generator)", LOOP,
                      INT),
    "optimizer": Flag("rmsprop", "update rule", OPT, choices=OPTIMIZERS),
    "lr": Flag(1e-4, "learning rate of both networks", OPT, NUM),
    "momentum": Flag(0.0, "momentum", OPT, FRACTION, optimizers=("sgd", "rmsprop")),
    "nesterov": Flag(False, "Nesterov momentum", OPT, optimizers=("sgd",)),
    "weight_decay": Flag(0.0, "L2 penalty added to the gradient", OPT, NUM0),
    "rms_alpha": Flag({"gan": 0.99, "wgan": 0.99, "wgan_gp": 0.9}, "decay of the squared-gradient "
                      "average", OPT, FRACTION, optimizers=RMS),
    "centered": Flag(False, "divide by the gradient's variance", OPT, optimizers=RMS),
    "betas": Flag([0.9, 0.999], "moment decay rates", OPT, "two in [0, 1)", optimizers=("adam",)),
    "opt_eps": Flag(1e-8, "added to the denominator", OPT, NUM, optimizers=(*RMS, "adam")),
    "gan_loss": Flag("minimax", "minimax (the report's): minimise log(1 - D(G(z))); "
                     "nonsaturating: maximise log D(G(z))", "GAN only",
                     choices=("minimax", "nonsaturating"), variants=("gan",)),
    "clip": Flag(0.03, "critic parameters are clipped to [-clip, clip] after each update",
                 "WGAN only", NUM, variants=("wgan",)),
    "gp_weight": Flag(0.001, "weight of the gradient penalty (the report's 0.001)",
                      "WGAN-GP only", NUM0, variants=("wgan_gp",)),
    "seeds": Flag(1, "train seeds --seed ... --seed+E-1 together, each in a folder in --out",
                  ENSEMBLE, INT),
    "vary": Flag(None, "NAME=V1,V2: a model per value of lr (or gp_weight, clip) and seed",
                 ENSEMBLE, parse=parse_vary),
    "anneal": Flag(None, "NAME=START,...: start lr (or gp_weight, clip, ema) at START, moving "
                   "linearly to its flag's value over --anneal-epochs", LOOP, parse=parse_values),
    "anneal_epochs": Flag(40, "epochs over which --anneal's values reach their flags'", LOOP, INT),
    "cooldown": Flag(None, "NAME=END,...: move lr (or gp_weight, clip, ema) linearly from its "
                     "flag's value towards END (reached one epoch after the last: lr=0 is fine) "
                     "over the last --cooldown-epochs", LOOP, parse=parse_values),
    "cooldown_epochs": Flag(100, "the last epochs, in which --cooldown's values move", LOOP, INT),
    "device": Flag("auto", "auto: CUDA when there is one", RUN, choices=("auto", "cpu", "cuda")),
    "no_compile": Flag(False, "run the step eagerly instead of through torch.compile", RUN),
    "threads": Flag(1, "CPU threads that train (0: torch's default); recording has its own", RUN,
                    INT0),
    "frame_every": Flag(5, "draw a frame every K epochs and at the last (0: none)", RUN, INT0),
    "eval_every": Flag(5, "exact W1 every K epochs, at frames and at the last", RUN, INT0),
    "fit_factor": Flag(2.0, "fitted: W1 stays within F × the noise floor from then on", RUN,
                       "a number of at least 1"),
    "out": Flag({v: f"runs/{v}" for v in VARIANTS}, "run folder; one that holds a run is kept and "
                "the run goes to the first free OUT2, OUT3, ...", RUN),
    "overwrite": Flag(False, "write into --out even if it holds a run, deleting that run", RUN),
    "resume": Flag(None, "continue the run in DIR from its checkpoint (--epochs extends it)", RUN,
                   parse=str),
}
RESUMABLE = ("epochs", "frame_every", "eval_every", "fit_factor", "resume")  # change no number

def default(name: str, variant: str):
    value = FLAGS[name].default
    return value[variant] if isinstance(value, dict) else value

def fail(message: str):
    """argparse's error hook: its two-line usage error becomes our one-line error."""
    raise UserError(message)

def build_parser(variant: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python variants/{variant}.py",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.error, groups = fail, {}
    for name, flag in [(n, f) for n, f in FLAGS.items() if variant in f.variants]:
        group = groups.setdefault(flag.group, parser.add_argument_group(flag.group))
        value = default(name, variant)
        if value is False:
            options = {"action": "store_true"}
        elif isinstance(value, list):
            options = {"nargs": len(value), "type": type(value[0])}
        else:
            kind = flag.parse or (None if flag.choices or value is None else type(value))
            options = {"choices": flag.choices, "type": kind}
        group.add_argument("--" + name.replace("_", "-"), default=value, help=flag.help, **options)
    return parser

def check_config(cfg: dict) -> None:
    """Every flag's value against what it must be, then the flags against each other."""
    for name, flag in FLAGS.items():
        value, dashed = cfg.get(name), "--" + name.replace("_", "-")
        if flag.must and value is not None and not MUST[flag.must](value):
            must = flag.must.replace("two in", "two numbers in")
            raise UserError(f"{dashed} must be {must} (got {value})")
        if cfg["optimizer"] not in flag.optimizers and value != default(name, cfg["variant"]):
            raise UserError(f"{dashed} is for --optimizer {' or '.join(flag.optimizers)}, "
                            f"not {cfg['optimizer']}")
    if cfg["nesterov"] and not cfg["momentum"] > 0:
        raise UserError("--nesterov must be used with --momentum > 0")
    for name in ("toy_size", "eval_size"):
        if cfg["data"] not in TOY_DATA and cfg[name] != default(name, cfg["variant"]):
            raise UserError(f"--{name.replace('_', '-')} is for the built-in toy distributions "
                            f"({', '.join(TOY_DATA)}), not --data {cfg['data']}")

def member_configs(cfg: dict) -> list[dict]:
    """One config per model: seeds --seed … --seed + seeds − 1, each with every --vary value."""
    name, values = cfg["vary"] or (None, [None])
    return [{**cfg, "seed": seed, "seeds": 1, "vary": None, **({name: value} if name else {})}
            for seed in range(cfg["seed"], cfg["seed"] + cfg["seeds"]) for value in values]

def resumed(variant: str, parser: argparse.ArgumentParser, argv, cfg: dict) -> dict:
    """The config of the run that --resume continues, with the flags that argv sets (None: not
    set) changed where they may be."""
    parser.set_defaults(**dict.fromkeys(cfg))
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    cfg = {**cfg, **records.resumed_config(variant, given, RESUMABLE, FLAGS)}
    planned = records.read_config(Path(cfg["resume"]))["epochs"]
    if cfg["cooldown"] and cfg["epochs"] != planned:  # its last epochs are the cooldown's
        raise UserError(f"--epochs {cfg['epochs']}: {cfg['resume']} cools down over the last "
                        f"{cfg['cooldown_epochs']} of its {planned} epochs; they cannot change")
    return cfg

def scheduled(cfg: dict, epoch: int) -> dict[str, float]:
    """The --anneal'd and --cooldown'd hyper-parameters' values in this epoch: from START they
    reach their flags' values at epoch --anneal-epochs + 1; from there they move towards END
    over the last --cooldown-epochs, the flags' values in the first of them."""
    warm = min((epoch - 1) / cfg["anneal_epochs"], 1.0)
    cool = max(epoch - 1 - cfg["epochs"] + cfg["cooldown_epochs"], 0) / cfg["cooldown_epochs"]
    values = {k: start + (cfg[k] - start) * warm for k, start in (cfg["anneal"] or {}).items()}
    for k, end in (cfg["cooldown"] or {}).items():
        values[k] = values.get(k, cfg[k]) + (end - values.get(k, cfg[k])) * cool
    return values

def check_schedules(cfg: dict) -> None:
    """--vary, --anneal and --cooldown name hyper-parameters that the variant holds as tensors,
    with values that pass as the flags' would; the anneal ends before the cooldown starts."""
    variable, variant = [name for name in VARIABLE if name in cfg], cfg["variant"]
    for flag, name in [("vary", cfg["vary"] and cfg["vary"][0]),
                       *((f, name) for f in ("anneal", "cooldown") for name in cfg[f] or {})]:
        if name and name not in variable:
            verb = {"cooldown": "cool down"}.get(flag, flag)
            raise UserError(f"--{flag} {name}: {TITLES[variant]} can {verb} {', '.join(variable)}")
    for flag, epoch in (("anneal", 1), ("cooldown", cfg["epochs"])):  # where the line ends
        try:  # a cooldown's END is approached, not reached: lr=0 never trains at 0
            for member in member_configs(cfg) if cfg[flag] else []:
                values = scheduled(member, epoch)
                check_config({**member, **{k: values[k] for k in cfg[flag]}})
        except UserError as e:
            raise UserError(f"--{flag} {e.args[0].removeprefix('--')} in epoch {epoch}") from None
    used = (cfg["anneal_epochs"] if cfg["anneal"] else 0) + cfg["cooldown_epochs"]
    if cfg["cooldown"] and used > cfg["epochs"]:
        windows = ("--anneal-epochs {anneal_epochs} and --cooldown-epochs {cooldown_epochs} add "
                   "up to" if cfg["anneal"] else "--cooldown-epochs {cooldown_epochs} is")
        raise UserError(f"{windows.format(**cfg)} more than --epochs {cfg['epochs']}")

def parse_config(variant: str, argv: list[str] | None = None) -> dict:
    parser = build_parser(variant)
    cfg = vars(parser.parse_args(argv))
    if cfg["resume"] is not None:
        cfg = resumed(variant, parser, argv, cfg)
    cfg["variant"] = variant
    for member in [cfg, *member_configs(cfg)]:  # each value checked as flags are
        check_config(member)
    check_schedules(cfg)
    return cfg

def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to this PyTorch")
    return torch.device(name if name != "auto" else "cuda" if torch.cuda.is_available() else "cpu")

# ---- Data. One seeded generator per purpose, like splitting a JAX key: drawing more numbers for
# one purpose (frames, say) never shifts those of another (the batches). ----------------------

STREAMS = ("split", "init", "train", "eval", "floor", "toy")

def make_rng(seed: int, stream: str) -> torch.Generator:
    words = np.random.SeedSequence([seed, STREAMS.index(stream)]).generate_state(2)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))

def load_data(cfg: dict) -> tuple[np.ndarray, dict | None, str]:
    """The points, the mixture's modes when the data is a built-in mixture, and a name."""
    if cfg["data"] in TOY_DATA:
        modes = TOY_DATA[cfg["data"]]
        modes = modes and {"means": np.array(modes["means"], float), "std": modes["std"]}
        points = toy_points(cfg["data"], make_rng(cfg["data_seed"], "toy"), cfg["toy_size"])
        return points, modes, cfg["data"]
    points, source = load_points(cfg["data"], cfg["key"], cfg["delimiter"])
    return points, None, source

def split_data(cfg: dict, points: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    return split_points(points, cfg["train_size"], cfg["test_size"],
                        make_rng(cfg["data_seed"], "split"), source, fewest=measures.NEIGHBOURS + 1,
                        batch=(cfg["batch_size"], cfg["n_critic"]))

# ---- Models: MLPs, by default the report's noise_dim -> 256 -> 64 -> 2 and 2 -> 256 -> 64 -> 1

def generator_sizes(cfg: dict) -> tuple[int, ...]:
    return (cfg["noise_dim"], *cfg["hidden"], 2)

def critic_sizes(cfg: dict) -> tuple[int, ...]:
    return (2, *(cfg.get("critic_hidden") or cfg["hidden"]), 1)

def torch_module(sizes: tuple[int, ...], sigmoid: bool = False, device=None) -> nn.Sequential:
    """The plain nn.Sequential(Linear, ReLU, ..., Linear[, Sigmoid]) whose state_dict keys
    ('0.weight', ..., '4.bias') our parameter dicts use, and which loads them."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out, device=device), nn.ReLU()]
    return nn.Sequential(*layers[:-1], *([nn.Sigmoid()] if sigmoid else []))

# What functional_call runs our dicts through, on the meta device so they hold no numbers: it
# swaps its tensors for ours and nn.Linear reads only weight and bias, so a skeleton serves any
# network of its depth at any width. Built here: torch.compile cannot trace an nn.Parameter.
SKELETONS = {n: torch_module((1,) * (n + 2), device="meta") for n in range(1, MAX_HIDDEN + 1)}

def mlp(params: dict, x: torch.Tensor) -> torch.Tensor:
    return functional_call(SKELETONS[len(params) // 2 - 1], params, (x,))

def generator(g_params: dict, z: torch.Tensor) -> torch.Tensor:
    return mlp(g_params, z)

def critic(d_params: dict, x: torch.Tensor) -> torch.Tensor:
    """The score per point. For GAN it is the logit, D(x) = sigmoid(score): the report's final
    Sigmoid layer has no parameters, so the saved dict loads either way."""
    return mlp(d_params, x).squeeze(-1)

def init_mlp(sizes: tuple[int, ...], rng: torch.Generator, scheme: str = "torch",
             dtype: torch.dtype = torch.float32) -> dict:
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        if scheme == "torch":  # nn.Linear's kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in))
            bound = fan_in ** -0.5
            w = (2 * torch.rand(fan_out, fan_in, generator=rng, dtype=dtype) - 1) * bound
            b = (2 * torch.rand(fan_out, generator=rng, dtype=dtype) - 1) * bound
        elif scheme == "kaiming":  # He et al. for ReLU layers: keeps activations' scale
            w = torch.randn(fan_out, fan_in, generator=rng, dtype=dtype) * math.sqrt(2 / fan_in)
            b = torch.zeros(fan_out, dtype=dtype)
        else:
            raise ValueError(f"unknown init scheme {scheme!r}")
        params[f"{2 * i}.weight"], params[f"{2 * i}.bias"] = w, b
    return params

# ---- Objectives: the three variants differ here and in update_critic's clipping --------------

def gradient_penalty(d_params: dict, real, fake, eps) -> torch.Tensor:
    """E[(‖∇ₓ D(x̂)‖₂ − 1)²] on x̂ = εx + (1 − ε)G(z). Rows do not interact, so the gradient of
    the summed scores is every row's ∇ₓ D. Taken with torch.func.grad inside the parameter
    gradient, it differentiates twice and compiles (autograd.grad(create_graph=True) followed
    by .backward() does not)."""
    x_hat = eps * real + (1 - eps) * fake
    grad_x = grad(lambda x: critic(d_params, x).sum())(x_hat)
    return ((torch.linalg.vector_norm(grad_x, dim=-1) - 1) ** 2).mean()

def critic_loss(d_params: dict, real, fake, eps, hyper: dict, variant: str):
    real_score, fake_score = critic(d_params, real), critic(d_params, fake)
    if variant == "gan":  # −[log D(x) + log(1 − D(G(z)))], from the logits: never log(0)
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

# ---- Optimisers: pure init/update pairs (optax style) whose numbers match torch.optim. The
# learning rate lives in the state as a tensor, so changing it recompiles nothing. ------------

class Optimizer(NamedTuple):
    init: Callable  # (params, lr) -> state
    update: Callable  # (grads, state, params) -> (params, state)

def tree_map(f: Callable, *trees):  # over the leaves of (nested) dicts of the same keys
    if isinstance(trees[0], dict):
        return {k: tree_map(f, *(t[k] for t in trees)) for k in trees[0]}
    return f(*trees)

def lr_state(params: dict, lr) -> torch.Tensor:
    like = next(iter(params.values()))
    return torch.as_tensor(lr, dtype=like.dtype, device=like.device)

def with_weight_decay(grads: dict, params: dict, weight_decay: float) -> dict:
    return tree_map(lambda g, p: g + weight_decay * p, grads, params) if weight_decay else grads

def sgd(momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> Optimizer:
    """p ← p − lr·v with v = μv + g (v = g without momentum, g + μv with Nesterov's)."""
    def init(params, lr):
        state = {"lr": lr_state(params, lr)}
        if momentum:  # a zero buffer makes the first step buf = g, as torch.optim's clone does
            state["momentum_buffer"] = tree_map(torch.zeros_like, params)
        return state

    def update(grads, state, params):
        grads, state = with_weight_decay(grads, params, weight_decay), dict(state)
        if momentum:
            buf = tree_map(lambda b, g: momentum * b + g, state["momentum_buffer"], grads)
            state["momentum_buffer"] = buf
            grads = tree_map(lambda g, b: g + momentum * b, grads, buf) if nesterov else buf
        return tree_map(lambda p, g: p - state["lr"] * g, params, grads), state
    return Optimizer(init, update)

def rmsprop(alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
            centered: bool = False, weight_decay: float = 0.0) -> Optimizer:
    """s ← αs + (1 − α)g²; p ← p − lr·g / (√(s − ḡ²) + ε), ḡ the mean gradient if centered."""
    def init(params, lr):
        zeros = partial(tree_map, torch.zeros_like, params)
        return {"lr": lr_state(params, lr), "square_avg": zeros(),
                **({"grad_avg": zeros()} if centered else {}),
                **({"momentum_buffer": zeros()} if momentum else {})}

    def update(grads, state, params):
        grads, state = with_weight_decay(grads, params, weight_decay), dict(state)
        sq = tree_map(lambda s, g: alpha * s + (1 - alpha) * g * g, state["square_avg"], grads)
        state["square_avg"] = sq
        if centered:
            ga = tree_map(lambda a, g: a + (1 - alpha) * (g - a), state["grad_avg"], grads)
            state["grad_avg"], sq = ga, tree_map(lambda s, a: s - a * a, sq, ga)
        step = tree_map(lambda g, s: g / (s.sqrt() + eps), grads, sq)
        if momentum:
            step = tree_map(lambda b, s: momentum * b + s, state["momentum_buffer"], step)
            state["momentum_buffer"] = step
        return tree_map(lambda p, s: p - state["lr"] * s, params, step), state
    return Optimizer(init, update)

def adam(betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    """m, v: decaying means of g and g²; p ← p − lr·m̂ / (√v̂ + ε), m̂ and v̂ bias-corrected."""
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
        step_size, root = state["lr"] / (1 - b1 ** step), (1 - b2 ** step).sqrt()
        new = tree_map(lambda p, m, v: p - step_size * m / (v.sqrt() / root + eps), params, m, v)
        return new, {"lr": state["lr"], "step": step, "exp_avg": m, "exp_avg_sq": v}
    return Optimizer(init, update)

def make_optimizer(cfg: dict) -> Optimizer:
    if cfg["optimizer"] == "sgd":
        return sgd(cfg["momentum"], cfg["nesterov"], cfg["weight_decay"])
    if cfg["optimizer"] == "rmsprop":
        return rmsprop(cfg["rms_alpha"], cfg["opt_eps"], cfg["momentum"], cfg["centered"],
                       cfg["weight_decay"])
    return adam(cfg["betas"], cfg["opt_eps"], cfg["weight_decay"])

# ---- The training step ------------------------------------------------------------------------

def init_state(cfg: dict, rng: torch.Generator, device, dtype=torch.float32) -> dict:
    """Both networks, both optimiser states, the generator's moving average and the
    hyper-parameters as tensors (changing them recompiles nothing): all a step reads and writes."""
    opt = make_optimizer(cfg)
    g = init_mlp(generator_sizes(cfg), rng, cfg["init"], dtype)
    d = init_mlp(critic_sizes(cfg), rng, cfg.get("critic_init") or cfg["init"], dtype)
    g, d = (tree_map(lambda t: t.to(device), p) for p in (g, d))
    first = (cfg["ema_start"] - 1) * cfg.get("steps_per_epoch", 1) + 1  # the step it starts at
    values = {**{k: cfg[k] for k in ("clip", "gp_weight", "ema") if k in cfg}, "ema_first": first}
    hyper = {k: torch.tensor(float(v), dtype=dtype, device=device) for k, v in values.items()}
    ema = {"g": tree_map(torch.clone, g), "steps": torch.zeros_like(hyper["ema"])}
    return {"g": g, "d": d, "g_opt": opt.init(g, cfg["lr"]), "d_opt": opt.init(d, cfg["lr"]),
            "hyper": hyper, "ema": ema}

def make_train_step(cfg: dict) -> Callable:
    """The pure step (state, batch) -> (state, metrics). batch: real (n_critic, B, 2), z_critic
    (n_critic, B, noise_dim), eps (n_critic, B, 1), z_gen (B, noise_dim)."""
    variant, n_critic, opt = cfg["variant"], cfg["n_critic"], make_optimizer(cfg)
    d_grad = grad(partial(critic_loss, variant=variant), has_aux=True)
    g_grad = grad_and_value(partial(generator_loss, variant=variant,
                                    gan_loss=cfg.get("gan_loss", "minimax")))

    def update_critic(d, d_opt, g, batch, hyper):
        metrics = []
        for k in range(n_critic):  # each critic update on its own real batch and noise
            fake = generator(g, batch["z_critic"][k])
            grads, aux = d_grad(d, batch["real"][k], fake, batch["eps"][k], hyper)
            d, d_opt = opt.update(grads, d_opt, d)
            if variant == "wgan":  # the Lipschitz constraint by brute force, after every update
                d = clip_params(d, hyper["clip"])
            metrics.append(aux)
        return d, d_opt, tree_map(lambda *m: sum(m) / n_critic, *metrics)

    def update_generator(g, g_opt, d, z):
        grads, loss = g_grad(g, d, z)
        return *opt.update(grads, g_opt, g), loss

    def train_step(state, batch):
        g0, d0, hyper = state["g"], state["d"], state["hyper"]
        # Which version of the other network each update sees is all that the orders change.
        if cfg["order"] == "d-first":
            d, d_opt, aux = update_critic(d0, state["d_opt"], g0, batch, hyper)
            g, g_opt, loss = update_generator(g0, state["g_opt"], d, batch["z_gen"])
        else:  # g-first: the critic sees the updated G; simultaneous (the report's code): G as was
            g, g_opt, loss = update_generator(g0, state["g_opt"], d0, batch["z_gen"])
            seen = g if cfg["order"] == "g-first" else g0
            d, d_opt, aux = update_critic(d0, state["d_opt"], seen, batch, hyper)
        # The generator's average, G_ema ← βG_ema + (1 − β)G: sampled and saved, never trained.
        steps = state["ema"]["steps"] + 1
        decay = torch.where(steps > hyper["ema_first"], hyper["ema"], 0.0)  # 0: a copy of G
        ema = tree_map(lambda a, p: decay * a + (1 - decay) * p, state["ema"]["g"], g)
        return {"g": g, "d": d, "g_opt": g_opt, "d_opt": d_opt, "hyper": hyper,
                "ema": {"g": ema, "steps": steps}}, {"g_loss": loss, **aux}
    return train_step

# ---- Ensembles: models (seeds, or values of a hyper-parameter) vmapped over stacked states;
# each draws its batches from its own seed, so it follows the trajectory it would follow alone.

def member_name(member: dict, cfg: dict) -> str:
    name = f"seed{member['seed']}"
    return f"{name}_{cfg['vary'][0]}{member[cfg['vary'][0]]:g}" if cfg["vary"] else name

def tree_stack(trees: list, dim: int = 0):
    if isinstance(trees[0], dict):
        return {k: tree_stack([t[k] for t in trees], dim) for k in trees[0]}
    return torch.stack(trees, dim)

def tree_index(tree, i: int):
    return tree_map(lambda x: x[i], tree)

def init_members(members: list[dict], device, dtype=torch.float32) -> dict:
    return tree_stack([init_state(m, make_rng(m["seed"], "init"), device, dtype) for m in members])

def epoch_batches(points: torch.Tensor, cfg: dict, steps: int, rng: torch.Generator,
                  device) -> dict:
    """One epoch of randomness, drawn at once outside the step: a reshuffle of the training
    points cut into `steps` groups of n_critic full batches, and all the noise. The points that
    fill no batch (7000 mod 64 = 24) sit this epoch out: fixed shapes never recompile."""
    size, n_critic, noise_dim = cfg["batch_size"], cfg["n_critic"], cfg["noise_dim"]
    order = torch.randperm(len(points), generator=rng)[: steps * n_critic * size]
    batches = {"real": points[order].reshape(steps, n_critic, size, 2),
               "z_critic": torch.randn(steps, n_critic, size, noise_dim, generator=rng),
               "eps": torch.rand(steps, n_critic, size, 1, generator=rng),
               "z_gen": torch.randn(steps, size, noise_dim, generator=rng)}
    return {k: v.to(device) for k, v in batches.items()}

def members_batches(points: torch.Tensor, members: list[dict], steps: int, rngs: list,
                    device) -> dict:
    """Every member's epoch of batches, stacked on dimension 1 (batches[k][step][member])."""
    return tree_stack([epoch_batches(points, m, steps, rng, device)
                       for m, rng in zip(members, rngs)], dim=1)

# ---- The loop: training only; what is recorded of each epoch is sent away --------------------

def compile_step(step: Callable, device="cpu") -> Callable:
    """torch.compile the step as one graph with static shapes: on CUDA replayed as a CUDA graph
    (one launch per step), on the CPU with its kernels called from generated C++. Every step
    shares one code object, whose compiled versions dynamo counts: a process that trains several
    models (tests, sweeps) starts each from an empty cache."""
    torch._dynamo.reset()
    if torch.device(device).type != "cuda":
        return torch.compile(step, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})
    graphed = torch.compile(step, fullgraph=True, dynamic=False,
                            options={"triton.cudagraphs": True})

    def replay(state, batch):
        # A replay's outputs live in memory that the next replay overwrites, and the next step
        # takes this one's state: what a step returns is copied out of the graph's memory.
        torch.compiler.cudagraph_mark_step_begin()
        new_state, metrics = graphed(state, batch)
        return tree_map(torch.clone, new_state), tree_map(torch.clone, metrics)
    return replay

def fast_calls(step: Callable) -> Callable:
    """The compiled step's inputs never change shape, dtype or structure after its first call
    (the tests hold whole runs to one graph with the guards checked), so its guards need not be
    evaluated on every call (BENCHMARKS.md)."""
    def call(state, batch):
        with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
            return step(state, batch)
    return call

def run_epoch(step: Callable, state: dict, batches: dict, steps: int) -> tuple[dict, dict]:
    """`steps` steps; the losses come back once, as epoch means per member, so no step waits
    for the device."""
    history = []
    for i in range(steps):
        state, metrics = step(state, {k: v[i] for k, v in batches.items()})
        history.append(metrics)
    return state, {k: torch.stack([m[k] for m in history]).mean(0).cpu() for k in history[0]}

def healthy_members(losses: dict, state: dict) -> torch.Tensor:
    """Per member: are its epoch's losses and its parameters all finite?"""
    leaves = [*losses.values(), *state["g"].values(), *state["d"].values()]
    return torch.stack([x.isfinite().reshape(len(x), -1).all(1).cpu() for x in leaves]).all(0)

class Diverged(Exception):
    """Some members' losses or parameters stopped being finite; args[0] names them."""

def snapshot(epoch: int, state: dict, losses: dict, seconds: float, rngs: list) -> dict:
    """What the recorder needs of an epoch, as NumPy copies (small, pickled by value): for the
    checkpoint, the whole state and where every member's random stream stands."""
    parts = {"state": state, "losses": losses}
    rngs = np.stack([r.get_state().numpy() for r in rngs])
    return {"epoch": epoch, "seconds": seconds, "rngs": rngs,
            **tree_map(lambda t: t.detach().cpu().numpy().copy(), parts)}

def start_point(run: dict) -> tuple[dict, list, dict]:
    """The state and random streams that training starts from, and the epoch to record first:
    the initialisation (epoch 0), or where the checkpoint of a resumed run left off."""
    members, device, saved = run["members"], run["device"], run["checkpoint"]
    if saved is None:
        state, rngs = init_members(members, device), [make_rng(m["seed"], "train") for m in members]
        return state, rngs, snapshot(0, state, {}, 0.0, rngs)
    rngs = [torch.Generator().set_state(torch.from_numpy(r)) for r in saved["rngs"]]
    state = tree_map(lambda a: torch.from_numpy(a).to(device), saved["state"])
    return state, rngs, {**saved, "resumed": True}

def warm_up(run: dict, step: Callable, state: dict) -> float:
    """One step on throw-away noise, so that compiling is timed apart from training."""
    started = time.perf_counter()
    rngs = [torch.Generator().manual_seed(0) for _ in run["members"]]
    batches = members_batches(run["train_t"], run["members"], 1, rngs, run["device"])
    step(state, {k: v[0] for k, v in batches.items()})
    return time.perf_counter() - started

def with_hyper(state: dict, values: list[dict]) -> dict:
    """The state with each member's values (the learning rate of both optimisers, or one of
    state["hyper"]) set for the coming epoch, a tensor of its own each: dynamo guards on two
    inputs being one tensor, so a shared one would recompile the step."""
    state = {**state, **{k: dict(state[k]) for k in ("g_opt", "d_opt", "hyper")}}
    like = state["hyper"]["ema"]
    for name in values[0]:
        value = torch.tensor([v[name] for v in values], dtype=like.dtype, device=like.device)
        for part in ("g_opt", "d_opt") if name == "lr" else ("hyper",):
            state[part][name] = value.clone()
    return state

def train_epochs(run: dict, send: Callable) -> None:
    """Initialise, compile (timed apart), then every epoch, each sent on once it is finite."""
    cfg, members, device = run["cfg"], run["members"], run["device"]
    state, rngs, first = start_point(run)
    send(first)
    step = vmap(make_train_step(cfg))
    if not cfg["no_compile"]:
        step = compile_step(step, device)
        send({"warm_up_s": warm_up(run, step, state)})
        step = fast_calls(step)
    for epoch in range(first["epoch"] + 1, cfg["epochs"] + 1):
        started = time.perf_counter()
        state = with_hyper(state, [scheduled(m, epoch) for m in members])
        batches = members_batches(run["train_t"], members, run["steps"], rngs, device)
        new_state, losses = run_epoch(step, state, batches, run["steps"])
        seconds = time.perf_counter() - started
        healthy = healthy_members(losses, new_state)
        if not healthy.all():
            raise Diverged([name for name, ok in zip(run["names"], healthy) if not ok])
        state = new_state
        send(snapshot(epoch, state, losses, seconds, rngs))

# ---- Outputs: the recorder (plots/recorder.py) turns each epoch's snapshot into the run
# folder's files, sampling and scoring the networks through the functions the run hands it.

def record_in_worker(run: dict) -> records.Worker:
    """The recorder in a process of its own (plots.records.serve): training goes on while the
    last epoch is recorded, and waits when the recorder falls QUEUE_SIZE behind."""
    return records.start_worker(partial(records.serve, partial(recorder.open_recorder, run),
                                        recorder.handle))

# ---- A run: config -> data -> recorder -> training loop -> summary ---------------------------

def prepare_run(cfg: dict) -> dict:
    """Everything both processes need to know of a run, worked out once."""
    device = resolve_device(cfg["device"])
    points, modes, source = load_data(cfg)
    train_points, test = split_data(cfg, points, source)
    steps = len(train_points) // (cfg["batch_size"] * cfg["n_critic"])
    members = member_configs({**cfg, "steps_per_epoch": steps})  # where --ema-start's epoch is
    names = [member_name(m, cfg) for m in members]
    folder, member_dirs, checkpoint = records.open_run_dirs(cfg, names)
    size = max(len(test), cfg["eval_size"])  # the fixed noise each member is scored on
    eval_z = [torch.randn(size, cfg["noise_dim"], generator=make_rng(m["seed"], "eval"))
              for m in members]
    run = {"cfg": cfg, "device": device, "source": source, "train": train_points, "test": test,
           "train_t": torch.as_tensor(train_points, dtype=torch.float32), "modes": modes,
           "members": members, "names": names, "folder": folder, "started": time.time(),
           "member_dirs": member_dirs, "checkpoint": checkpoint, "steps": steps,
           "window": plot_window(np.vstack([train_points, test])),
           "defaults": {k: default(k, cfg["variant"]) for k in FLAGS},  # config.json: changed
           "title": TITLES[cfg["variant"]], "generator": generator, "critic": critic,
           "floor_seed": make_rng(cfg["data_seed"], "floor").initial_seed(),
           "eval_z": eval_z}
    records.write_configs(run)
    return run

def train(cfg: dict, record: Callable[[dict], records.Worker] = record_in_worker) -> dict:
    """Train the model, or the ensemble, that cfg describes and write the run folder; returns
    its summary. An interrupted or diverged run keeps everything up to its last good epoch."""
    run = prepare_run(cfg)
    print(console.start_message(run), flush=True)
    worker, bar = record(run), None  # the bar starts with training, after compiling
    status, diverged = "failed", None  # "failed" stays only if a bug stops the run

    def send(message: dict) -> None:
        nonlocal bar
        with records.interrupts_held():
            bar = console.show(bar, worker.send(message), message, cfg, run["steps"])
    try:
        torch.set_num_threads(cfg["threads"] or torch.get_num_threads())
        print(console.compile_message(cfg["no_compile"]), flush=True)
        train_epochs(run, send)
        status = "completed"
    except Diverged as e:
        status, diverged = "diverged", e.args[0]
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        if bar is not None:
            bar.close()
        with records.interrupts_held():
            for line in worker.finish({"status": status, "diverged_members": diverged}):
                console.say(None, line)
    summary = json.loads((run["folder"] / "summary.json").read_text())
    if status != "failed":
        print(console.end_message(summary, run["folder"]), flush=True,
              file=sys.stdout if status == "completed" else sys.stderr)
    return summary

EXIT_CODES = {"completed": 0, "usage": 2, "diverged": 3, "interrupted": 130}  # a bug exits 1

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
