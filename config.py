"""A run's config: every flag once, the presets, and how a command line becomes a checked config.

A flag is one `Flag` in `FLAGS`: its default, its help, what a valid value is, and the facts the
rest of lab5 reads off it (whether --resume may change it, whether each member holds it as a
tensor, whether it says where a run goes rather than how it trains). A config is the dict of
every flag's value (keys as in FLAGS, plus "variant"); a run's config.json holds it with what
the run worked out beside it (recording/folder.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from data.points import TOY_DATA, file_sha256, find_data
from errors import UserError, strict_parser

VARIANTS = ("gan", "wgan", "wgan_gp")
OPTIMIZERS = ("rmsprop", "sgd", "adam")
TITLES = {"gan": "GAN", "wgan": "WGAN", "wgan_gp": "WGAN-GP"}
MAX_HIDDEN = 8  # hidden layers a network may have


class Rule(NamedTuple):
    """What a valid value of a flag is, in words (as an error message says it) and as a test."""

    text: str
    test: Callable[[object], bool]


POSITIVE_INT = Rule("a positive integer", lambda v: v >= 1)
NON_NEGATIVE_INT = Rule("a non-negative integer", lambda v: v >= 0)
POSITIVE = Rule("a positive number", lambda v: math.isfinite(v) and v > 0)
NON_NEGATIVE = Rule("a non-negative number", lambda v: math.isfinite(v) and v >= 0)
AT_LEAST_ONE = Rule("a number of at least 1", lambda v: math.isfinite(v) and v >= 1)
FRACTION = Rule("in [0, 1)", lambda v: 0 <= v < 1)
TWO_FRACTIONS = Rule("two numbers in [0, 1)", lambda v: all(0 <= b < 1 for b in v))
SIZE = Rule("a count or a fraction in (0, 1)", lambda v: isinstance(v, int) and v >= 1 or 0 < v < 1)
SIZE_OR_ZERO = Rule(
    "0, a count or a fraction in (0, 1)", lambda v: isinstance(v, int) and v >= 0 or 0 < v < 1
)
WIDTHS = Rule(
    f"1 to {MAX_HIDDEN} widths in 1..4096",
    lambda v: 1 <= len(v) <= MAX_HIDDEN and all(1 <= w <= 4096 for w in v),
)


@dataclass(frozen=True)
class Flag:
    """One command-line flag, `--name` for the FLAGS key `name` with - for _."""

    default: object  # the value, or {variant: value} where the variants differ
    help: str  # what --help says it does
    group: str  # the --help section that lists it
    rule: Rule | None = None  # what a valid value is (None: any its type or choices allow)
    choices: tuple | dict | None = None  # the names it takes ({variant: names} where they differ)
    variants: tuple = VARIANTS  # the variants that have it
    optimizers: tuple = OPTIMIZERS  # a value given with another --optimizer is an error
    parse: Callable | None = None  # how to read it, where the default's type does not say
    resumable: bool = False  # --resume may change it: it changes no number of the training
    per_member: bool = False  # a tensor per member in the state: --vary, --anneal, --cooldown
    place: bool = False  # not a setting of the training (where it runs, a preset): not "changed"
    toy_only: bool = False  # a value given with a points file rather than a toy is an error
    of_epochs: bool = False  # a count of epochs, or a fraction of --epochs (config.window)
    metavar: str | None = None  # what --help calls its value, where the help names it
    shown: str | None = None  # the default as --help says it, where its value would not


def parse_size(text: str) -> int | float:
    """A count or a share: '7000' (points, epochs), '0.85' or '7000/8192' (of the file's rows,
    of the run's epochs)."""
    try:
        if text.strip().lstrip("+-").isdigit():
            return int(text)
        numerator, _, denominator = text.partition("/")
        return float(numerator) / float(denominator) if denominator else float(text)
    except (ValueError, ZeroDivisionError):
        message = f"expected a count, a fraction or a share like 7000/8192, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def parse_vary(text: str) -> tuple[str, list[float]]:
    """'lr=1e-4,3e-4' -> ('lr', [0.0001, 0.0003])"""
    name, _, values = text.partition("=")
    try:
        return name.replace("-", "_"), [float(v) for v in values.split(",")]
    except ValueError:
        message = f"expected NAME=V1,V2,... with numbers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def parse_widths(text: str) -> list[int]:
    """'512,512,512' -> [512, 512, 512]: the hidden layers' widths, input side first"""
    try:
        return [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 256,64, got {text!r}") from None


def parse_values(text: str) -> dict[str, float]:
    """'lr=5e-4,gp_weight=0.1' -> {'lr': 0.0005, 'gp_weight': 0.1}"""
    try:
        pairs = [part.split("=") for part in text.split(",")]
        return {name.replace("-", "_"): float(value) for name, value in pairs}
    except ValueError:
        message = f"expected NAME=VALUE,... with numbers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


# ---- Presets: the recipes people ask for by name, each a list of flags per variant -----------

# The report's loop, literally: its code's simultaneous update, one critic step per generator
# step, and what it left to PyTorch (batch 64 was its most likely choice, nn.Linear's init,
# RMSprop's alpha, no averaging); WGAN's clip, which it does not give, at lab5's first 0.1.
REPORT_LOOP = (
    "--order simultaneous --n-critic 1 --batch-size 64 --init torch --ema 0 --rms-alpha 0.99"
).split()
# WGAN-GP by epoch 30 in every seed measured (RESULTS.md §8): lr 5e-4 and penalty 0.3 in epoch
# 1, back at the report's by epoch 41 (what makes the fit fast, so in epochs, not a fraction),
# and the learning rate cooled to 0 over the last half of the run (the last 100 of 200; in a
# run shorter than 80 epochs the cooldown starts before the anneal ends).
FAST_START = (
    "--anneal lr=0.0005,gp_weight=0.3,ema=0.99 --anneal-epochs 40 --ema 0.999 "
    "--cooldown lr=0 --cooldown-epochs 0.5"
).split()
# The toy benchmark (RESULTS.md §4.1): PacGAN's protocol (100,000 points drawn, the mode
# metrics over 2,500 generated ones, W1 against 1,000 held out) and the settings a search on
# seeds 1000-1002 chose: small networks, Adam at a rate falling from 1e-3 to 1e-5 over the run.
TOY = (
    "--data ring8 --toy-size 100000 --train-size 99000 --test-size 1000 --eval-size 2500 "
    "--hidden 128,128,128 --critic-hidden 64,64,64 --optimizer adam --batch-size 256 "
    "--lr 1e-5 --anneal lr=1e-3 --epochs 150 --anneal-epochs 150 --ema 0.999"
).split()
TOY_VARIANT = {
    "gan": "--betas 0.5 0.999 --gan-loss nonsaturating".split(),
    "wgan": "--betas 0.5 0.999 --clip 0.1 --n-critic 5".split(),
    "wgan_gp": "--betas 0.5 0.9 --gp-weight 0.1 --n-critic 5".split(),
}
PRESETS = {
    "report": {"gan": REPORT_LOOP, "wgan": [*REPORT_LOOP, "--clip", "0.1"], "wgan_gp": REPORT_LOOP},
    "fast": {"wgan_gp": FAST_START},
    "toy": {variant: [*TOY, *flags] for variant, flags in TOY_VARIANT.items()},
}


DATA = "data"
LOOP = "model and training"
OPT = "optimiser (both networks)"
ENSEMBLE = "ensembles: several models in one vmapped step"
RUN = "run"
RMSPROP = ("rmsprop",)
# The report fixes RMSprop, lr 1e-4 for both networks, 200 epochs; what it leaves open was
# chosen by a search over seeds (docs/defaults.md); --preset report is its literal loop.
FLAGS = {
    "preset": Flag(
        None,
        "a named recipe (its flags are listed at the end): its flags first, then the ones "
        "given, which override them",
        "recipes",
        choices={v: tuple(name for name, p in PRESETS.items() if v in p) for v in VARIANTS},
        resumable=True,  # --resume checks the flags it sets one by one
        place=True,
    ),
    "data": Flag(
        "data/points.mat",
        "the points: a .mat (its --key array), .npy, .npz, .csv, .tsv or .txt file of N×2 "
        "numbers; or a toy distribution: " + ", ".join(TOY_DATA),
        DATA,
    ),
    "key": Flag(
        None, "the array in a .mat or .npz file", DATA, shown="xx in a .mat, an .npz's only one"
    ),
    "delimiter": Flag(
        None, "of a text file's columns: , tab ; space", DATA, shown="found in the file"
    ),
    "train_size": Flag(
        7000 / 8192,
        "training points, after a seeded shuffle: a count, or a fraction of the file's",
        DATA,
        SIZE,
        parse=parse_size,
        shown="7000/8192, the report's share of the file",
    ),
    "test_size": Flag(
        0,
        "held-out points for the distances, as --train-size (0: the rest)",
        DATA,
        SIZE_OR_ZERO,
        parse=parse_size,
    ),
    "data_seed": Flag(
        0, "seed of the split, apart from --seed: seeds share one split", DATA, NON_NEGATIVE_INT
    ),
    "toy_size": Flag(
        8192,
        "points drawn from a toy distribution, before the split",
        DATA,
        POSITIVE_INT,
        toy_only=True,
    ),
    "eval_size": Flag(
        0,
        "generated points the mode metrics count on a toy mixture (0: as many as test points)",
        DATA,
        NON_NEGATIVE_INT,
        toy_only=True,
    ),
    "epochs": Flag(
        200, "passes of the critic over the training points", LOOP, POSITIVE_INT, resumable=True
    ),
    "batch_size": Flag(
        {"gan": 32, "wgan": 64, "wgan_gp": 16}, "points per critic update", LOOP, POSITIVE_INT
    ),
    "n_critic": Flag(1, "critic updates per generator update", LOOP, POSITIVE_INT),
    "order": Flag(
        {"gan": "g-first", "wgan": "d-first", "wgan_gp": "g-first"},
        "g-first: the critic learns from the generator after its step; d-first: the generator "
        "steps against the critic after its step; simultaneous: both step from where they were "
        "(the report's code)",
        LOOP,
        choices=("g-first", "d-first", "simultaneous"),
    ),
    "noise_dim": Flag(8, "dimension of the generator's noise z ~ N(0, I)", LOOP, POSITIVE_INT),
    "codes": Flag(
        0,
        "a categorical code beside z: the generator also gets a one-hot of one of K codes, drawn "
        "uniformly, so that it can jump between modes where a map of z alone must cross the gap "
        "(0: none)",
        LOOP,
        NON_NEGATIVE_INT,
        metavar="K",
    ),
    "hidden": Flag(
        (256, 64),
        "hidden layers' widths of both networks, input side first; the report's are the default",
        LOOP,
        WIDTHS,
        parse=parse_widths,
        metavar="W1,W2,...",
    ),
    "critic_hidden": Flag(
        None,
        "the critic's widths, where they differ from --hidden's",
        LOOP,
        WIDTHS,
        parse=parse_widths,
        metavar="W1,W2,...",
    ),
    "init": Flag(
        {"gan": "torch", "wgan": "torch", "wgan_gp": "kaiming"},
        "torch: nn.Linear's; kaiming: N(0, 2/fan_in), zero biases",
        LOOP,
        choices=("torch", "kaiming"),
    ),
    "critic_init": Flag(
        None,
        "the critic's initialisation, where it differs from --init's",
        LOOP,
        choices=("torch", "kaiming"),
    ),
    "seed": Flag(
        0, "seed of the initialisation, the batches and the noise", LOOP, NON_NEGATIVE_INT
    ),
    "optimizer": Flag("rmsprop", "update rule", OPT, choices=OPTIMIZERS),
    "lr": Flag(1e-4, "learning rate of both networks", OPT, POSITIVE, per_member=True),
    "momentum": Flag(
        0.0,
        "momentum of the update: the share of the last step carried into the next (0: none)",
        OPT,
        FRACTION,
        optimizers=("sgd", "rmsprop"),
    ),
    "nesterov": Flag(False, "Nesterov momentum", OPT, optimizers=("sgd",)),
    "weight_decay": Flag(0.0, "L2 penalty added to the gradient", OPT, NON_NEGATIVE),
    "rms_alpha": Flag(
        {"gan": 0.99, "wgan": 0.99, "wgan_gp": 0.9},
        "decay of the squared-gradient average",
        OPT,
        FRACTION,
        optimizers=RMSPROP,
    ),
    "centered": Flag(False, "divide by the gradient's variance", OPT, optimizers=RMSPROP),
    "betas": Flag([0.9, 0.999], "moment decay rates", OPT, TWO_FRACTIONS, optimizers=("adam",)),
    "opt_eps": Flag(1e-8, "added to the denominator", OPT, POSITIVE, optimizers=(*RMSPROP, "adam")),
    "gan_loss": Flag(
        "minimax",
        "minimax (the report's): minimise log(1 - D(G(z))); nonsaturating: maximise log D(G(z))",
        "GAN only",
        choices=("minimax", "nonsaturating"),
        variants=("gan",),
    ),
    "clip": Flag(
        0.03,
        "critic parameters are clipped to [-clip, clip] after each update",
        "WGAN only",
        POSITIVE,
        variants=("wgan",),
        per_member=True,
    ),
    "gp_weight": Flag(
        0.001,
        "weight of the gradient penalty in the critic's loss; the report's is the default",
        "WGAN-GP only",
        NON_NEGATIVE,
        variants=("wgan_gp",),
        per_member=True,
    ),
    # after the variants' own: the hyper-parameters held as tensors are lr, clip, gp_weight, ema
    "ema": Flag(
        0.99,
        "decay of the generator's moving average, which is sampled, drawn and saved (0: none, "
        "the generator itself)",
        LOOP,
        FRACTION,
        per_member=True,
    ),
    "ema_start": Flag(
        1, "epoch whose first step starts the average (before: the generator)", LOOP, POSITIVE_INT
    ),
    "seeds": Flag(
        1,
        "train seeds --seed ... --seed+E-1 together, each in a folder in --out",
        ENSEMBLE,
        POSITIVE_INT,
        metavar="E",
    ),
    "vary": Flag(
        None,
        "a model per value of lr (or gp_weight, clip, ema) and seed",
        ENSEMBLE,
        parse=parse_vary,
        metavar="NAME=V1,V2,...",
    ),
    "anneal": Flag(
        None,
        "start lr (or gp_weight, clip, ema) at START, moving linearly to its flag's value over "
        "--anneal-epochs",
        LOOP,
        parse=parse_values,
        metavar="NAME=START,...",
    ),
    "anneal_epochs": Flag(
        40,
        "the first epochs, over which --anneal's values reach their flags': a count, or a "
        "fraction of --epochs (0.2: the first fifth)",
        LOOP,
        SIZE,
        parse=parse_size,
        of_epochs=True,
    ),
    "cooldown": Flag(
        None,
        "move lr (or gp_weight, clip, ema) linearly from its flag's value towards END (reached "
        "one epoch after the last: lr=0 is fine) over the last --cooldown-epochs; where these "
        "overlap --anneal's, from the annealed value",
        LOOP,
        parse=parse_values,
        metavar="NAME=END,...",
    ),
    "cooldown_epochs": Flag(
        100,
        "the last epochs, in which --cooldown's values move: a count, or a fraction of --epochs "
        "(0.5: the last half; 0: no cooldown)",
        LOOP,
        SIZE_OR_ZERO,
        parse=parse_size,
        of_epochs=True,
    ),
    "device": Flag(
        "auto", "auto: CUDA when there is one", RUN, choices=("auto", "cpu", "cuda"), place=True
    ),
    "no_compile": Flag(False, "run the step eagerly instead of through torch.compile", RUN),
    "threads": Flag(
        1,
        "CPU threads that train (0: torch's default); recording has its own",
        RUN,
        NON_NEGATIVE_INT,
    ),
    "frame_every": Flag(
        5,
        "draw a frame every K epochs and at the last (0: none)",
        RUN,
        NON_NEGATIVE_INT,
        resumable=True,
        metavar="K",
    ),
    "eval_every": Flag(
        5,
        "exact W1 every K epochs, at frames and at the last",
        RUN,
        NON_NEGATIVE_INT,
        resumable=True,
        metavar="K",
    ),
    "fit_factor": Flag(
        2.0,
        "fitted: W1 stays within F × the noise floor from then on",
        RUN,
        AT_LEAST_ONE,
        resumable=True,
        metavar="F",
    ),
    "out": Flag(
        {v: f"runs/{v}" for v in VARIANTS},
        "run folder; one that holds a run is kept and the run goes to the first free OUT2, "
        "OUT3, ...",
        RUN,
        place=True,
        metavar="OUT",
    ),
    "overwrite": Flag(
        False, "write into --out even if it holds a run, deleting that run", RUN, place=True
    ),
    "resume": Flag(
        None,
        "continue the run in DIR from its checkpoint (--epochs extends it)",
        RUN,
        parse=str,
        resumable=True,
        place=True,
        metavar="DIR",
    ),
}
PER_MEMBER = tuple(name for name, flag in FLAGS.items() if flag.per_member)


def preset_flags(variant: str, name: str | None) -> list[str]:
    """The flags --preset NAME stands for (none without a preset)."""
    return list(PRESETS[name][variant]) if name else []


def flag_lines(flags: list[str], width: int) -> list[str]:
    """A command line's flags, each with its values, in lines of at most `width` characters."""
    groups = []
    for token in flags:
        if token.startswith("--"):
            groups.append(token)
        else:  # a value stays with its flag
            groups[-1] += f" {token}"
    lines = [groups[0]]
    for group in groups[1:]:
        if len(lines[-1]) + 1 + len(group) <= width:
            lines[-1] += f" {group}"
        else:
            lines.append(group)
    return lines


def presets_help(variant: str) -> str:
    """Each preset the variant has, with its flags, for the end of --help."""
    lines = ["presets (--preset NAME: its flags first, then the ones given, which override them):"]
    for name, flags in PRESETS.items():
        if variant in flags:
            wrapped = flag_lines(flags[variant], 80)
            lines += [f"  {name:8}{wrapped[0]}", *(f"{'':10}{line}" for line in wrapped[1:])]
    return "\n".join(lines)


# ---- Parsing: a parser read off FLAGS, and the checks --------------------------------------


def for_variant(value, variant: str):
    """A flag's default or choices, where they differ between the variants, the variant's."""
    return value[variant] if isinstance(value, dict) else value


def default(name: str, variant: str):
    return for_variant(FLAGS[name].default, variant)


def dashed(name: str) -> str:
    return "--" + name.replace("_", "-")


def argument_options(flag: Flag, variant: str) -> dict:
    """What argparse needs to read a flag of the variant."""
    value = for_variant(flag.default, variant)
    choices = for_variant(flag.choices, variant)
    if value is False:
        return {"action": "store_true"}
    if isinstance(value, list):
        return {"nargs": len(value), "type": type(value[0])}
    kind = flag.parse or (None if choices or value is None else type(value))
    return {"choices": choices, "type": kind, "metavar": flag.metavar}


def typed(flag: Flag, value) -> str:
    """A default as a user types it: 256,64 for widths, 0.9 0.999 for two numbers, 1e-08."""
    if isinstance(value, (list, tuple)):
        return ("," if flag.parse else " ").join(typed(flag, v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def help_text(flag: Flag, variant: str) -> str:
    """What --help says of a flag: its help, then its default once (none where it has none)."""
    value = for_variant(flag.default, variant)
    shown = flag.shown or (None if value is None or value is False else typed(flag, value))
    text = flag.help + (f" (default: {shown})" if shown else "")
    return text.replace("%", "%%")  # argparse formats help with %


def build_parser(variant: str) -> argparse.ArgumentParser:
    parser = strict_parser(
        prog=f"python variants/{variant}.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog as laid out
        epilog=presets_help(variant),
    )
    groups = {}
    for name, flag in FLAGS.items():
        if variant not in flag.variants:
            continue
        if flag.group not in groups:
            groups[flag.group] = parser.add_argument_group(flag.group)
        options = argument_options(flag, variant)
        value = default(name, variant)
        text = help_text(flag, variant)
        groups[flag.group].add_argument(dashed(name), default=value, help=text, **options)
    return parser


def check_flag(name: str, flag: Flag, cfg: dict) -> None:
    """A flag's value against its rule, and against the optimiser and data it is for."""
    value = cfg.get(name)
    if flag.rule and value is not None and not flag.rule.test(value):
        raise UserError(f"{dashed(name)} must be {flag.rule.text} (got {value})")
    changed = value != default(name, cfg["variant"])
    if cfg["optimizer"] not in flag.optimizers and changed:
        optimizers = " or ".join(flag.optimizers)
        raise UserError(f"{dashed(name)} is for --optimizer {optimizers}, not {cfg['optimizer']}")
    if flag.toy_only and cfg["data"] not in TOY_DATA and changed:
        raise UserError(
            f"{dashed(name)} is for the built-in toy distributions "
            f"({', '.join(TOY_DATA)}), not --data {cfg['data']}"
        )


def check_config(cfg: dict) -> None:
    """Every flag's value on its own, then the flags against each other."""
    for name, flag in FLAGS.items():
        check_flag(name, flag, cfg)
    if cfg["nesterov"] and not cfg["momentum"] > 0:
        raise UserError("--nesterov must be used with --momentum > 0")


def member_configs(cfg: dict) -> list[dict]:
    """One config per model: seeds --seed … --seed + seeds − 1, each with every --vary value."""
    name, values = cfg["vary"] or (None, [None])
    members = []
    for seed in range(cfg["seed"], cfg["seed"] + cfg["seeds"]):
        for value in values:
            varied = {name: value} if name else {}
            members.append({**cfg, "seed": seed, "seeds": 1, "vary": None, **varied})
    return members


def member_name(member: dict, cfg: dict) -> str:
    """seed3, or seed3_lr0.0003 where the ensemble varies lr: the member's folder in the run's."""
    if not cfg["vary"]:
        return f"seed{member['seed']}"
    name = cfg["vary"][0]
    return f"seed{member['seed']}_{name}{member[name]:g}"


def window(cfg: dict, name: str) -> int:
    """A flag of_epochs (--anneal-epochs, --cooldown-epochs) in epochs: a count as given, a
    fraction of the run's --epochs to the nearest epoch (half up), at least 1."""
    value = cfg[name]
    if isinstance(value, int):
        return value
    return max(1, math.floor(value * cfg["epochs"] + 0.5))


def scheduled(cfg: dict, epoch: int) -> dict[str, float]:
    """The --anneal'd and --cooldown'd hyper-parameters' values in this epoch: from START they
    reach their flags' values at epoch --anneal-epochs + 1; over the last --cooldown-epochs
    they move from those values towards END (from the annealed values, where the two windows
    overlap), having those values in the first of them."""
    warm = min((epoch - 1) / window(cfg, "anneal_epochs"), 1.0)
    cooldown = window(cfg, "cooldown_epochs")  # 0: none
    cool = max(epoch - 1 - cfg["epochs"] + cooldown, 0) / cooldown if cooldown else 0.0
    values = {k: start + (cfg[k] - start) * warm for k, start in (cfg["anneal"] or {}).items()}
    for k, end in (cfg["cooldown"] or {}).items():
        before = values.get(k, cfg[k])
        values[k] = before + (end - before) * cool
    return values


def check_scheduled_names(cfg: dict) -> None:
    """--vary, --anneal and --cooldown name hyper-parameters the variant holds as tensors."""
    variable = [name for name in PER_MEMBER if name in cfg]
    named = [("vary", cfg["vary"][0])] if cfg["vary"] else []
    named += [(flag, name) for flag in ("anneal", "cooldown") for name in cfg[flag] or {}]
    for flag, name in named:
        if name not in variable:
            verb = {"cooldown": "cool down"}.get(flag, flag)
            variant = TITLES[cfg["variant"]]
            raise UserError(f"--{flag} {name}: {variant} can {verb} {', '.join(variable)}")


def check_schedules(cfg: dict) -> None:
    """--anneal's and --cooldown's values pass as the flags' would where their lines end (a
    cooldown's END is approached, not reached: lr=0 never trains at 0), and the cooldown lies
    within the run."""
    check_scheduled_names(cfg)
    for flag, epoch in (("anneal", 1), ("cooldown", cfg["epochs"])):
        try:
            for member in member_configs(cfg) if cfg[flag] else []:
                values = scheduled(member, epoch)
                check_config({**member, **{k: values[k] for k in cfg[flag]}})
        except UserError as e:
            message = e.args[0].removeprefix("--")
            raise UserError(f"--{flag} {message} in epoch {epoch}") from None
    check_windows(cfg)


def check_windows(cfg: dict) -> None:
    """The cooldown lies within the run (the anneal may be longer than the run, and the two
    may overlap); where it does not, the message names windows that would fit."""
    epochs = cfg["epochs"]
    if cfg["cooldown"] and window(cfg, "cooldown_epochs") > epochs:
        raise UserError(
            f"--cooldown-epochs {cfg['cooldown_epochs']} is more than --epochs {epochs}: give "
            f"--cooldown-epochs {epochs} or less, or a fraction of the run (0.5: the last half)"
        )


def resolve_device(name: str) -> torch.device:
    """--device: auto is CUDA when this PyTorch sees a CUDA device, else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to this PyTorch")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# ---- Resuming: the config a run folder was written with, changed only where that is safe ---


def read_config(folder: Path) -> dict:
    """The config.json of the run in `folder`; none, or not a run's, is a one-line error."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise UserError(f"{folder} holds no lab5 run (no config.json)") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{folder}/config.json is unreadable ({e})") from None
    if not isinstance(cfg, dict) or "variant" not in cfg:
        raise UserError(f"{folder}/config.json is not a lab5 run's config")
    return with_added_flags(cfg, cfg["variant"])


def with_added_flags(saved: dict, variant: str) -> dict:
    """A config written before some of today's flags existed, with those at their defaults:
    what the run trained with, since a new flag's default changes nothing."""
    added = {
        name: default(name, variant) for name, flag in FLAGS.items() if variant in flag.variants
    }
    return {**added, **saved}


def as_json(value):
    """The value as config.json holds it (a tuple is a list)."""
    return json.loads(json.dumps(value))


def agrees(name: str, value, saved: dict) -> bool:
    """Does a flag given to --resume agree with the run's config? A window (0.5 of 200 epochs
    agrees with 100) in the epochs of the run as planned."""
    if FLAGS[name].of_epochs and name in saved:
        return window({**saved, name: value}, name) == window(saved, name)
    return as_json(value) == saved.get(name)


def saved_with(variant: str, given: dict) -> dict:
    """The flags of the run in --resume DIR, changed where `given` (the flags set) sets them:
    only the resumable ones, which change no number of the training; the others must agree."""
    folder = Path(given["resume"])
    saved = read_config(folder)
    if saved["variant"] != variant:
        raise UserError(
            f"--resume {folder} is a {saved['variant']} run: resume it with "
            f"python variants/{saved['variant']}.py"
        )
    for name, value in given.items():
        if not FLAGS[name].resumable and not agrees(name, value, saved):
            may = [dashed(n) for n, flag in FLAGS.items() if flag.resumable and not flag.place]
            raise UserError(
                f"{dashed(name)} {value} would change the training of {folder}, trained with "
                f"{saved.get(name)}; --resume can change only {', '.join(may)}"
            )
    if saved["data_sha256"] and file_sha256(find_data(saved["data"])) != saved["data_sha256"]:
        raise UserError(f"{saved['data']} has changed since {folder} was trained (sha256)")
    return {k: v for k, v in {**saved, **given, "out": str(folder)}.items() if k in FLAGS}


def resume_config(variant: str, parser: argparse.ArgumentParser, argv: list[str], cfg) -> dict:
    """The config of the run that --resume continues, with the flags argv sets changed where
    they may be. A preset given again is checked through its flags, and those that change no
    number stay the run's. A cooldown's epochs are the last ones: they cannot change."""
    parser.set_defaults(**dict.fromkeys(cfg))  # then None is "not given"
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    flags = preset_flags(variant, given.get("preset"))
    preset = {k: v for k, v in vars(parser.parse_args(flags)).items() if v is not None}
    checked = {k: v for k, v in preset.items() if not FLAGS[k].resumable}
    cfg = {**cfg, **saved_with(variant, {**checked, **given})}
    check_extension(cfg, read_config(Path(cfg["resume"]))["epochs"])
    return cfg


def check_extension(cfg: dict, planned: int) -> None:
    """A run whose schedule depends on its length (a cooldown, an anneal over a fraction of
    it) keeps the --epochs it was planned with."""
    if cfg["epochs"] == planned:
        return
    as_planned = {**cfg, "epochs": planned}
    if cfg["cooldown"] and window(as_planned, "cooldown_epochs"):
        raise UserError(
            f"--epochs {cfg['epochs']}: {cfg['resume']} cools down over the last "
            f"{window(as_planned, 'cooldown_epochs')} of its {planned} epochs; they cannot change"
        )
    if cfg["anneal"] and isinstance(cfg["anneal_epochs"], float):
        raise UserError(
            f"--epochs {cfg['epochs']}: {cfg['resume']} anneals over its first "
            f"{window(as_planned, 'anneal_epochs')} of {planned} epochs (--anneal-epochs "
            f"{cfg['anneal_epochs']}), which would move"
        )


def parse_config(variant: str, argv: list[str] | None = None) -> dict:
    """The checked config of the command line `argv` (default: the script's) of a variant."""
    parser = build_parser(variant)
    argv = sys.argv[1:] if argv is None else list(argv)
    cfg = vars(parser.parse_args(argv))
    if cfg["resume"] is not None:
        cfg = resume_config(variant, parser, argv, cfg)
    elif cfg["preset"] is not None:  # its flags first: the ones given override them
        cfg = vars(parser.parse_args([*preset_flags(variant, cfg["preset"]), *argv]))
    cfg["variant"] = variant
    for member in [cfg, *member_configs(cfg)]:  # each value checked as flags are
        check_config(member)
    check_schedules(cfg)
    return cfg


def set_by_preset(cfg: dict) -> dict:
    """The values in cfg that its --preset set (and no flag given after it changed)."""
    parser = build_parser(cfg["variant"])
    parser.set_defaults(**dict.fromkeys(FLAGS))
    flags = preset_flags(cfg["variant"], cfg.get("preset"))
    values = {k: v for k, v in vars(parser.parse_args(flags)).items() if v is not None}
    return {k: v for k, v in values.items() if as_json(v) == as_json(cfg[k])}


def changed_flags(cfg: dict) -> dict:
    """The flags whose values differ from the variant's defaults (as config.json has them),
    but for where the run went."""
    return {
        name: value
        for name, value in cfg.items()
        if name in FLAGS
        and not FLAGS[name].place
        and as_json(value) != as_json(default(name, cfg["variant"]))
    }
