"""The variant scripts' flags, a typed field each of Flags with its default, help and check; a
command line parsed once into a config (every flag's value and "variant": what lab5 trains from,
config.json holds), a preset and a resumed run's config.json merged into it as data."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Callable, NamedTuple

from data.points import TOY_DATA, file_sha256, find_data
from errors import UserError
from harness import cli
from harness.cli import dashed, field_docs, parse_size, parse_values, parse_vary, parse_widths
from harness.ensemble import check_extension, check_schedules, member_configs, span
from harness.presets import PRESETS, presets_help
from harness.run_folder import read_config
from lab5 import HYPER, MAX_HIDDEN

VARIANTS = ("gan", "wgan", "wgan_gp")
OPTIMIZERS = ("rmsprop", "sgd", "adam")
TITLES = {"gan": "GAN", "wgan": "WGAN", "wgan_gp": "WGAN-GP"}
GAN_LOSSES = ("minimax", "nonsaturating")
REPORT_SHARE = "7000/8192, the report's share of the file"


class Rule(NamedTuple):
    text: str  # what a valid value of a flag is, in words (as an error message says it)
    test: Callable[[object], bool]  # and as a test


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
    """What lab5 knows of a flag, `--name` for the field `name` with - for _."""

    default: object  # the value, or {variant: value} where the variants differ
    rule: Rule | None  # what a valid value is (None: any its type or choices allow)
    group: str  # the --help section that lists it
    help: str = ""  # what --help says it does: the field's docstring
    choices: tuple | dict | None = None  # the names it takes ({variant: names} where they differ)
    variants: tuple = VARIANTS  # the variants that have it
    optimizers: tuple = OPTIMIZERS  # a value given with another --optimizer is an error
    parse: Callable | None = None  # how to read it, where the default's type does not say
    resumable: bool = False  # --resume may change it: it changes no number of the training
    place: bool = False  # not a setting of the training (where it runs, a preset): not "changed"
    toy_only: bool = False  # a value given with a points file rather than a toy is an error
    of_epochs: bool = False  # a count of epochs, or a fraction of --epochs (span)
    metavar: str | None = None  # what --help calls its value, where the help names it
    shown: str | None = None  # the default as --help says it, where its value would not


def flag(default, rule: Rule | None, group: str, **facts):
    """A field of Flags (its help: the docstring below it), and what else lab5 knows of it."""
    return field(metadata={"flag": Flag(default, rule, group, **facts)})


DATA = "data"
LOOP = "model and training"
OPT = "optimiser (both networks)"
ENSEMBLE = "ensembles: several models in one vmapped step"
RUN = "run"
RMSPROP = ("rmsprop",)
INITS = ("torch", "kaiming")
ORDERS = {"gan": "g-first", "wgan": "d-first", "wgan_gp": "g-first"}  # each variant's default
PRESET_NAMES = {v: tuple(name for name, p in PRESETS.items() if v in p) for v in VARIANTS}


@dataclass(frozen=True)
class Flags:
    """Every flag of `python variants/<variant>.py`, in --help's order: the report fixes RMSprop,
    lr 1e-4 and 200 epochs, a search over seeds chose what it leaves open (docs/defaults.md)."""

    preset: str = flag(None, None, "recipes", choices=PRESET_NAMES, resumable=True, place=True)
    """a named recipe (its flags are listed at the end): its flags first, then the ones given,
    which override them"""  # --resume checks the flags a preset sets, one by one
    data: str = flag("data/points.mat", None, DATA)
    """the points: a .mat (its --key array), .npy, .npz, .csv, .tsv or .txt file of N×2 numbers;
    or a toy distribution: ring8, grid25, swissroll"""
    key: str = flag(None, None, DATA, shown="xx in a .mat, an .npz's only one")
    """the array in a .mat or .npz file"""
    delimiter: str = flag(None, None, DATA, shown="found in the file")
    """of a text file's columns: , tab ; space"""
    train_size: float = flag(7000 / 8192, SIZE, DATA, parse=parse_size, shown=REPORT_SHARE)
    """training points, after a seeded shuffle: a count, or a fraction of the file's"""
    test_size: float = flag(0, SIZE_OR_ZERO, DATA, parse=parse_size)
    """held-out points for the distances, as --train-size (0: the rest)"""
    data_seed: int = flag(0, NON_NEGATIVE_INT, DATA)
    """seed of the split, apart from --seed: seeds share one split"""
    toy_size: int = flag(8192, POSITIVE_INT, DATA, toy_only=True)
    """points drawn from a toy distribution, before the split"""
    eval_size: int = flag(0, NON_NEGATIVE_INT, DATA, toy_only=True)
    """generated points the mode metrics count on a toy mixture (0: as many as test points)"""
    epochs: int = flag(200, POSITIVE_INT, LOOP, resumable=True)
    """passes of the critic over the training points: an epoch is training points / (batch size
    × n_critic) steps, so a smaller file trains fewer steps an epoch"""
    batch_size: int = flag({"gan": 32, "wgan": 64, "wgan_gp": 16}, POSITIVE_INT, LOOP)
    """points per critic update"""
    n_critic: int = flag(1, POSITIVE_INT, LOOP)
    """critic updates per generator update"""
    order: str = flag(ORDERS, None, LOOP, choices=("g-first", "d-first", "simultaneous"))
    """g-first: the critic learns from the generator after its step; d-first: the generator
    steps against the critic after its step; simultaneous: both step from where they were (the
    report's code)"""
    noise_dim: int = flag(8, POSITIVE_INT, LOOP)
    """dimension of the generator's noise z ~ N(0, I)"""
    codes: int = flag(0, NON_NEGATIVE_INT, LOOP, metavar="K")
    """a categorical code beside z: the generator also gets a one-hot of one of K codes, drawn
    uniformly, so that it can jump between modes where a map of z alone must cross the gap (0:
    none)"""
    hidden: tuple = flag((256, 64), WIDTHS, LOOP, parse=parse_widths, metavar="W1,W2,...")
    """hidden layers' widths of both networks, input side first; the report's are the default"""
    critic_hidden: tuple = flag(None, WIDTHS, LOOP, parse=parse_widths, metavar="W1,W2,...")
    """the critic's widths, where they differ from --hidden's"""
    init: str = flag(
        {"gan": "torch", "wgan": "torch", "wgan_gp": "kaiming"}, None, LOOP, choices=INITS
    )
    """torch: nn.Linear's; kaiming: N(0, 2/fan_in), zero biases"""
    critic_init: str = flag(None, None, LOOP, choices=INITS)
    """the critic's initialisation, where it differs from --init's"""
    seed: int = flag(0, NON_NEGATIVE_INT, LOOP)
    """seed of the initialisation, the batches and the noise"""
    optimizer: str = flag("rmsprop", None, OPT, choices=OPTIMIZERS)
    """update rule"""
    lr: float = flag(1e-4, POSITIVE, OPT)
    """learning rate of both networks"""
    momentum: float = flag(0.0, FRACTION, OPT, optimizers=("sgd", "rmsprop"))
    """momentum of the update: the share of the last step carried into the next (0: none)"""
    nesterov: bool = flag(False, None, OPT, optimizers=("sgd",))
    """Nesterov momentum"""
    weight_decay: float = flag(0.0, NON_NEGATIVE, OPT)
    """L2 penalty added to the gradient"""
    rms_alpha: float = flag(
        {"gan": 0.99, "wgan": 0.99, "wgan_gp": 0.9}, FRACTION, OPT, optimizers=RMSPROP
    )
    """decay of the squared-gradient average"""
    centered: bool = flag(False, None, OPT, optimizers=RMSPROP)
    """divide by the gradient's variance"""
    betas: tuple = flag([0.9, 0.999], TWO_FRACTIONS, OPT, optimizers=("adam",))
    """moment decay rates"""
    opt_eps: float = flag(1e-8, POSITIVE, OPT, optimizers=(*RMSPROP, "adam"))
    """added to the denominator"""
    gan_loss: str = flag("minimax", None, "GAN only", choices=GAN_LOSSES, variants=("gan",))
    """minimax (the report's): minimise log(1 - D(G(z))); nonsaturating: maximise log D(G(z))"""
    clip: float = flag(0.03, POSITIVE, "WGAN only", variants=("wgan",))
    """critic parameters are clipped to [-clip, clip] after each update"""
    gp_weight: float = flag(0.001, NON_NEGATIVE, "WGAN-GP only", variants=("wgan_gp",))
    """weight of the gradient penalty in the critic's loss; the report's is the default"""
    ema: float = flag(0.99, FRACTION, LOOP)
    """decay of the generator's moving average, which is sampled, drawn and saved (0: none, the
    generator itself)"""
    ema_start: int = flag(1, POSITIVE_INT, LOOP)
    """epoch whose first step starts the average (before: the generator)"""
    seeds: int = flag(1, POSITIVE_INT, ENSEMBLE, metavar="E")
    """train seeds --seed ... --seed+E-1 together, each in a folder in --out"""
    vary: tuple = flag(None, None, ENSEMBLE, parse=parse_vary, metavar="NAME=V1,V2,...")
    """a model per value of lr (or gp_weight, clip, ema) and seed"""
    anneal: dict = flag(None, None, LOOP, parse=parse_values, metavar="NAME=START,...")
    """start lr (or gp_weight, clip, ema) at START, moving linearly to its flag's value over
    --anneal-epochs"""
    anneal_epochs: float = flag(40, SIZE, LOOP, parse=parse_size, of_epochs=True)
    """the first epochs, over which --anneal's values reach their flags': a count, or a
    fraction of --epochs (0.2: the first fifth)"""
    cooldown: dict = flag(None, None, LOOP, parse=parse_values, metavar="NAME=END,...")
    """move lr (or gp_weight, clip, ema) linearly from its flag's value towards END (reached one
    epoch after the last: lr=0 is fine) over the last --cooldown-epochs; where these overlap
    --anneal's, from the annealed value"""
    cooldown_epochs: float = flag(100, SIZE_OR_ZERO, LOOP, parse=parse_size, of_epochs=True)
    """the last epochs, in which --cooldown's values move: a count, or a fraction of --epochs
    (0.5: the last half; 0: no cooldown)"""
    device: str = flag("auto", None, RUN, choices=("auto", "cpu", "cuda"), place=True)
    """auto: CUDA when there is one"""
    no_compile: bool = flag(False, None, RUN)
    """run the step eagerly instead of through torch.compile"""
    threads: int = flag(1, NON_NEGATIVE_INT, RUN)
    """CPU threads that train (0: torch's default); recording has its own"""
    frame_every: int = flag(5, NON_NEGATIVE_INT, RUN, resumable=True, metavar="K")
    """draw a frame every K epochs and at the last (0: none)"""
    eval_every: int = flag(5, NON_NEGATIVE_INT, RUN, resumable=True, metavar="K")
    """exact W1 every K epochs, at frames and at the last"""
    fit_factor: float = flag(2.0, AT_LEAST_ONE, RUN, resumable=True, metavar="F")
    """fitted: W1 stays within F × the noise floor from then on"""
    tensorboard: bool = flag(False, None, RUN, resumable=True, place=True)
    """also log each model's numbers, frames and flags to TensorBoard, in its run folder
    (tensorboard --logdir runs)"""
    out: str = flag(None, None, RUN, place=True, metavar="OUT", shown="runs/VARIANT_FLAGS")
    """run folder (by default runs/, the variant and the flags given: runs/wgan_gp_epochs40); one
    that holds a run is kept and the run goes to the first free OUT_2, OUT_3, ..."""
    overwrite: bool = flag(False, None, RUN, place=True)
    """write into --out even if it holds a run, deleting that run"""
    resume: str = flag(None, None, RUN, parse=str, resumable=True, place=True, metavar="DIR")
    """continue the run in DIR from its checkpoint (--epochs extends it)"""


DOCS = field_docs(Flags)
FLAGS = {f.name: replace(f.metadata["flag"], help=DOCS[f.name]) for f in fields(Flags)}
PER_MEMBER = tuple(name for name in FLAGS if name in HYPER)  # lab5 holds them as tensors


# ---- --help and the parser, read off FLAGS -------------------------------------------------


def for_variant(value, variant: str):
    """A flag's default or choices, where they differ between the variants, the variant's."""
    return value[variant] if isinstance(value, dict) else value


def default(name: str, variant: str):
    return for_variant(FLAGS[name].default, variant)


def defaults(variant: str) -> dict:
    """The config of a variant's script run with no flags (less "variant")."""
    return {name: default(name, variant) for name, f in FLAGS.items() if variant in f.variants}


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


def other_variants_flags(variant: str) -> dict[str, str]:
    """The error for each flag that only other variants have: whose it is, and their script."""
    return {
        dashed(name): f"{dashed(name)} is {' and '.join(TITLES[v] for v in flag.variants)}'s "
        f"flag ({' or '.join(f'python variants/{v}.py' for v in flag.variants)}), not "
        f"{TITLES[variant]}'s"
        for name, flag in FLAGS.items()
        if variant not in flag.variants
    }


@cache
def build_parser(variant: str) -> argparse.ArgumentParser:
    """The variant's parser; what it parses holds only the flags given (no defaults)."""
    parser = cli.strict_parser(
        elsewhere=other_variants_flags(variant),
        prog=f"python variants/{variant}.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog as laid out
        epilog=presets_help(variant),
        argument_default=argparse.SUPPRESS,
    )
    mine = {name: flag for name, flag in FLAGS.items() if variant in flag.variants}
    sections = dict.fromkeys(flag.group for flag in mine.values())  # in the order flags meet them
    groups = {section: parser.add_argument_group(section) for section in sections}
    for name, flag in mine.items():
        options = argument_options(flag, variant)
        groups[flag.group].add_argument(dashed(name), help=help_text(flag, variant), **options)
    return parser


def preset_values(variant: str, name: str | None) -> dict:
    """What --preset NAME sets."""
    return vars(build_parser(variant).parse_args(PRESETS[name][variant])) if name else {}


# ---- Checks: each value on its own, then against the others --------------------------------


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
    for name, flag in FLAGS.items():
        check_flag(name, flag, cfg)
    if cfg["nesterov"] and not cfg["momentum"] > 0:
        raise UserError("--nesterov must be used with --momentum > 0")


# ---- Resuming: a run folder's config, changed only where that is safe ------------------------


def as_json(value):
    """The value as config.json holds it (a tuple is a list)."""
    return json.loads(json.dumps(value))


def with_added_flags(saved: dict, variant: str) -> dict:
    """A config written before some flags existed, with those at their defaults (unchanged)."""
    return {**defaults(variant), **saved}


def agrees(name: str, value, saved: dict) -> bool:
    """Does a flag given to --resume agree with the run's? A span in epochs (0.5 of 200: 100)."""
    if FLAGS[name].of_epochs and name in saved:
        return span({**saved, name: value}, name) == span(saved, name)
    return as_json(value) == saved.get(name)


def resumed(variant: str, flags: dict) -> dict:
    """The config of the run in --resume DIR, changed where `flags` (those given, with the
    ones a preset given again sets) may change it: only the resumable ones, which change no
    number of the training; the others must agree."""
    folder = Path(flags["resume"])
    saved = with_added_flags(read_config(folder), variant)
    if saved["variant"] != variant:
        raise UserError(
            f"--resume {folder} is a {saved['variant']} run: resume it with "
            f"python variants/{saved['variant']}.py"
        )
    may = [dashed(n) for n, flag in FLAGS.items() if flag.resumable and not flag.place]
    for name, value in flags.items():
        if not FLAGS[name].resumable and not agrees(name, value, saved):
            raise UserError(
                f"{dashed(name)} {value} would change the training of {folder}, trained with "
                f"{saved.get(name)}; --resume can change only {', '.join(may)}"
            )
    if saved["data_sha256"] and file_sha256(find_data(saved["data"])) != saved["data_sha256"]:
        raise UserError(f"{saved['data']} has changed since {folder} was trained (sha256)")
    cfg = {**saved, **flags, "out": str(folder)}
    check_extension(cfg, saved["epochs"])
    return {name: cfg[name] for name in defaults(variant)}


def parse_config(variant: str, argv: list[str] | None = None) -> dict:
    """The checked config of the command line `argv` (default: the script's) of a variant: its
    defaults, then its preset's flags, then the ones given; or the run it resumes."""
    flags = vars(build_parser(variant).parse_args(sys.argv[1:] if argv is None else argv))
    preset = preset_values(variant, flags.get("preset"))
    if flags.get("resume") is not None:
        checked = {k: v for k, v in preset.items() if not FLAGS[k].resumable}
        cfg = resumed(variant, {**checked, **flags})
    else:
        cfg = {**defaults(variant), **preset, **flags}
    cfg["variant"] = variant
    for member in [cfg, *member_configs(cfg)]:  # each value checked as flags are
        check_config(member)
    variable = [name for name in PER_MEMBER if name in cfg]
    check_schedules(cfg, check_config, variable, TITLES[variant])
    return cfg
