"""An ensemble from its config: the members (--seeds × --vary) and their folders' names, and
each epoch's hyper-parameters (--anneal, --cooldown), which lab5.train asks for, with what makes
a schedule valid: its values pass as the flags' would at both ends, and it fits the run."""

from __future__ import annotations

import math
from typing import Callable

from errors import UserError


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


def span(cfg: dict, name: str) -> int:
    """--anneal-epochs or --cooldown-epochs in epochs: a count as given, a fraction of the run's
    --epochs to the nearest epoch (half up), at least 1."""
    value = cfg[name]
    if isinstance(value, int):
        return value
    return max(1, math.floor(value * cfg["epochs"] + 0.5))


def scheduled(cfg: dict, epoch: int) -> dict[str, float]:
    """The --anneal'd and --cooldown'd hyper-parameters' values in this epoch: from START they
    reach their flags' values at epoch --anneal-epochs + 1; over the last --cooldown-epochs
    they move from those values towards END (from the annealed values, where the two spans
    overlap), having those values in the first of them."""
    warm = min((epoch - 1) / span(cfg, "anneal_epochs"), 1.0)
    cooldown = span(cfg, "cooldown_epochs")  # 0: none
    cool = max(epoch - 1 - cfg["epochs"] + cooldown, 0) / cooldown if cooldown else 0.0
    values = {k: start + (cfg[k] - start) * warm for k, start in (cfg["anneal"] or {}).items()}
    for k, end in (cfg["cooldown"] or {}).items():
        before = values.get(k, cfg[k])
        values[k] = before + (end - before) * cool
    return values


def check_scheduled_names(cfg: dict, variable: list[str], title: str) -> None:
    """--vary, --anneal and --cooldown name hyper-parameters the variant holds as tensors."""
    named = [("vary", cfg["vary"][0])] if cfg["vary"] else []
    named += [(flag, name) for flag in ("anneal", "cooldown") for name in cfg[flag] or {}]
    for flag, name in named:
        if name not in variable:
            verb = {"cooldown": "cool down"}.get(flag, flag)
            raise UserError(f"--{flag} {name}: {title} can {verb} {', '.join(variable)}")


def check_schedules(cfg: dict, check: Callable, variable: list[str], title: str) -> None:
    """--anneal's and --cooldown's values pass `check` as the flags' would where their lines
    end (a cooldown's END is approached, not reached: lr=0 never trains at 0), and the cooldown
    lies within the run (the anneal may be longer than the run, and the two may overlap). Only
    the `variable` hyper-parameters (of the variant `title`) may be scheduled or varied."""
    check_scheduled_names(cfg, variable, title)
    for flag, epoch in (("anneal", 1), ("cooldown", cfg["epochs"])):
        try:
            for member in member_configs(cfg) if cfg[flag] else []:
                values = scheduled(member, epoch)
                check({**member, **{k: values[k] for k in cfg[flag]}})
        except UserError as e:
            message = e.args[0].removeprefix("--")
            raise UserError(f"--{flag} {message} in epoch {epoch}") from None
    epochs = cfg["epochs"]
    if cfg["cooldown"] and span(cfg, "cooldown_epochs") > epochs:
        raise UserError(
            f"--cooldown-epochs {cfg['cooldown_epochs']} is more than --epochs {epochs}: give "
            f"--cooldown-epochs {epochs} or less, or a fraction of the run (0.5: the last half)"
        )


def check_extension(cfg: dict, planned: int) -> None:
    """A run whose schedule depends on its length (a cooldown, an anneal over a fraction of
    it) keeps the --epochs it was planned with."""
    if cfg["epochs"] == planned:
        return
    as_planned = {**cfg, "epochs": planned}
    if cfg["cooldown"] and span(as_planned, "cooldown_epochs"):
        raise UserError(
            f"--epochs {cfg['epochs']}: {cfg['resume']} cools down over the last "
            f"{span(as_planned, 'cooldown_epochs')} of its {planned} epochs; they cannot change"
        )
    if cfg["anneal"] and isinstance(cfg["anneal_epochs"], float):
        raise UserError(
            f"--epochs {cfg['epochs']}: {cfg['resume']} anneals over its first "
            f"{span(as_planned, 'anneal_epochs')} of {planned} epochs (--anneal-epochs "
            f"{cfg['anneal_epochs']}), which would move"
        )
