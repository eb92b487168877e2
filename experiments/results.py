"""What a finished run's folder says, as the report's and the sweeps' tables need it: per
member its W1 / noise floor by epoch, final and at given epochs, when it fitted, its last
precision, recall and mode metrics; a mean ± standard error as a table writes it; and what
decides a run's training, to tell a finished run of a configuration from another's."""

from __future__ import annotations

import math
from pathlib import Path

from harness import run_folder
from harness.ensemble import span
from harness.evaluation import MODE_COLUMNS, mean_and_se
from harness.flags import FLAGS, as_json


def member_results(run: Path, at_epochs=(30, 70)) -> list[dict]:
    """Per seed (each folder in an ensemble's that has a summary): the final metrics, W1 / floor
    at some epochs, and the epochs to fit."""
    members = [m for m in sorted(run.iterdir()) if m.is_dir() and run_folder.read_summary(m)]
    return [member_result(member, at_epochs) for member in members]


def member_result(member: Path, at_epochs=(30, 70)) -> dict:
    summary = run_folder.read_summary(member)
    factor = run_folder.config_of(member)["fit_factor"]
    floor = summary["noise_floor"]
    rows = run_folder.read_metrics(member)
    w1 = run_folder.w1_ratios(member)
    final = summary["final"]
    # None: interrupted before its first distance
    ratio = None if final["w1"] is None else final["w1"] / floor["w1"]
    return {
        "name": member.name,
        "final": ratio,
        **{f"at{e}": w1.get(e) for e in at_epochs},
        "fit": summary["epochs_to_fit"],
        "first": min((e for e, v in w1.items() if v <= factor), default=None),
        "precision": final["precision"],
        "recall": final["recall"],
        **{k: final[k] for k in MODE_COLUMNS if k in final},
        "w1_by_epoch": w1,
        "floor": floor,
        "energy_by_epoch": {
            int(r["epoch"]): r["energy"] for r in rows if r.get("energy") is not None
        },
    }


def mean_se(values, digits: int = 2) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "—"
    mean, se = mean_and_se(values)
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def training_values(cfg: dict) -> dict:
    """What decides a configuration's training: every value but those of the flags that say
    where it runs or name a preset (whose values are there one by one), and the schedules'
    windows in epochs (0.2 of 200 epochs anneals as 40 does)."""
    values = {k: v for k, v in cfg.items() if k not in FLAGS or not FLAGS[k].place}
    for name in (k for k in values if k in FLAGS and FLAGS[k].of_epochs and "epochs" in cfg):
        values[name] = span(cfg, name)
    return as_json(values)
