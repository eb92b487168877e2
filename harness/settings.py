"""A run's settings in words and in names: the flags it changed from its variant's defaults and
those its preset set (config.json keeps both), the defaults its variant does not share with the
others (the start message and the page show them), and the run folder's name they make."""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.cli import dashed
from harness.flags import FLAGS, TITLES, as_json, default, preset_values

LONGEST_NAME = 80  # characters of a run folder's name; a longer one is cut, with a digest


def set_by_preset(cfg: dict) -> dict:
    """The values in cfg that its --preset set (and no flag given after it changed)."""
    values = preset_values(cfg["variant"], cfg.get("preset"))
    return {k: v for k, v in values.items() if as_json(v) == as_json(cfg[k])}


def changed_flags(cfg: dict) -> dict:
    """The flags (but for where the run went) whose values are not the variant's defaults."""
    return {
        name: value
        for name, value in cfg.items()
        if name in FLAGS
        and not FLAGS[name].place
        and as_json(value) != as_json(default(name, cfg["variant"]))
    }


def own_defaults(variant: str) -> dict:
    """The variant's defaults that differ between the variants (its batch size, say), which a
    comparison of two variants at their defaults also compares."""
    return {
        name: default(name, variant)
        for name, flag in FLAGS.items()
        if isinstance(flag.default, dict) and not flag.place
    }


def own_defaults_line(variant: str) -> str:
    """The start message's line of the variant's own defaults."""
    flags = " ".join(f"{dashed(k)} {v}" for k, v in own_defaults(variant).items())
    return f"{TITLES[variant]}'s own defaults: {flags}"


def value_word(value) -> str:
    """A flag's value as a folder name holds it: 30, 0.0003, 256-64, lr0.0005-ema0.99."""
    if isinstance(value, dict):
        return "-".join(f"{k}{value_word(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "-".join(value_word(v) for v in value)
    if isinstance(value, bool):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return "-" + (Path(value).stem if "/" in value or "." in value else value)
    return str(value)


def folder_name(cfg: dict) -> str:
    """Where a run goes when --out is not given: runs/<variant>, then its preset and each flag
    given that changes a default (runs/wgan_gp_fast_epochs40, runs/gan_data-circle_seeds4)."""
    by_preset = set_by_preset(cfg)
    given = {k: v for k, v in changed_flags(cfg).items() if k not in by_preset}
    words = [dashed(k)[2:] + value_word(v) for k, v in given.items()]
    text = "_".join([cfg["variant"], *([cfg["preset"]] if cfg.get("preset") else []), *words])
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in text)
    if len(name) > LONGEST_NAME:
        name = name[: LONGEST_NAME - 9] + "_" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"runs/{name}"
