"""Seed and hyper-parameter ensembles: E models in one vmapped step, each following exactly the
trajectory it would follow alone."""

import csv
import json

import numpy as np
import pytest
import torch
from torch.func import vmap

import lab5
from harness import ensemble
from harness.flags import parse_config
from harness.main import main
from tests.test_compile import assert_same_trajectory

SMALL = (
    "--train-size 640 --test-size 200 --batch-size 32 --epochs 2 --frame-every 0 "
    "--eval-every 1 --no-compile"
).split()


def member(tree, j: int):
    """Model j of an ensemble's stacked state (or batch, or metrics)."""
    return lab5.tree_map(lambda x: x[j], tree)


def stacked_and_single(variant, flags, device, dtype=torch.float64, steps=3):
    cfg = parse_config(variant, ["--batch-size", "16", "--n-critic", "2", "--lr", "0.01", *flags])
    members = ensemble.member_configs(cfg)
    state = lab5.init_members(members, device, dtype)
    rngs = [lab5.make_rng(m["seed"], "train") for m in members]
    train = torch.rand(500, 2, generator=torch.Generator().manual_seed(0))
    batches = lab5.members_batches(train, members, steps, rngs, device)
    batches = {k: v.to(dtype) for k, v in batches.items()}
    return cfg, members, state, batches


@pytest.mark.parametrize(
    "variant,flags",
    [
        ("gan", ["--seeds", "3"]),
        ("wgan", ["--seeds", "2", "--vary", "clip=0.01,0.1"]),
        ("wgan_gp", ["--seeds", "2", "--vary", "lr=0.01,0.001"]),
        ("wgan_gp", ["--seeds", "2", "--vary", "ema=0,0.5", "--ema-start", "2"]),
        ("wgan_gp", ["--seeds", "3", "--codes", "3"]),
    ],
)
def test_each_member_of_a_vmapped_step_follows_its_own_run(variant, flags, device):
    cfg, members, state, batches = stacked_and_single(variant, flags, device)
    assert len(members) in (3, 4)
    ensemble_step = vmap(lab5.make_train_step(cfg))
    singles = [
        lab5.init_state(m, lab5.make_rng(m["seed"], "init"), device, torch.float64) for m in members
    ]
    single_steps = [lab5.make_train_step(m) for m in members]
    for i in range(3):
        batch = {k: v[i] for k, v in batches.items()}
        state, metrics = ensemble_step(state, batch)
        for j, (step, single) in enumerate(zip(single_steps, singles)):
            singles[j], single_metrics = step(single, member(batch, j))
            torch.testing.assert_close(member(metrics, j), single_metrics, rtol=1e-10, atol=1e-12)
    for j, single in enumerate(singles):
        torch.testing.assert_close(member(state, j), single, rtol=1e-10, atol=1e-12)
    # and the members really differ from each other (in the generator's average, which is the
    # generator itself without --ema)
    assert not torch.allclose(state["ema"]["g"]["0.weight"][0], state["ema"]["g"]["0.weight"][1])


def test_the_compiled_vmapped_step_matches_the_eager_one(device):
    cfg, members, state, batches = stacked_and_single(
        "wgan_gp", ["--seeds", "2", "--vary", "gp_weight=0.001,10"], device
    )
    assert_same_trajectory(
        vmap(lab5.make_train_step(cfg)),
        lab5.compile_step(vmap(lab5.make_train_step(cfg)), device),
        state,
        batches,
        steps=3,
    )


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_an_ensemble_run_equals_the_single_runs_and_reports_mean_and_se(tmp_path):
    assert (
        main("wgan_gp", [*SMALL, "--seeds", "2", "--seed", "5", "--out", str(tmp_path / "ens")])
        == 0
    )
    ens = tmp_path / "ens"
    config = json.loads((ens / "config.json").read_text())
    assert config["members"] == ["seed5", "seed6"]
    members = []
    for seed in (5, 6):
        assert (
            main("wgan_gp", [*SMALL, "--seed", str(seed), "--out", str(tmp_path / f"alone{seed}")])
            == 0
        )
        alone = read_csv(tmp_path / f"alone{seed}" / "metrics.csv")
        inside = read_csv(ens / f"seed{seed}" / "metrics.csv")
        assert [r["epoch"] for r in inside] == ["0", "1", "2"]
        for a, b in zip(alone, inside):
            for k in ("g_loss", "d_loss", "penalty", "energy", "w1"):
                if a[k]:
                    assert float(b[k]) == pytest.approx(float(a[k]), rel=1e-4, abs=1e-6), (seed, k)
        members.append(inside)
        assert json.loads((ens / f"seed{seed}" / "config.json").read_text())["seed"] == seed
    table = read_csv(ens / "ensemble.csv")
    for row, a, b in zip(table, *members):
        values = [float(a["w1"]), float(b["w1"])]
        assert float(row["w1_mean"]) == pytest.approx(np.mean(values))
        assert float(row["w1_se"]) == pytest.approx(np.std(values, ddof=1) / np.sqrt(2))
    summary = json.loads((ens / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final"]["members"] == 2


def test_a_diverging_member_stops_the_ensemble_and_is_named(tmp_path, capsys):
    code = main(
        "wgan",
        [
            *SMALL,
            "--epochs",
            "3",
            "--vary",
            "lr=1e-4,1e30",
            "--optimizer",
            "sgd",
            "--out",
            str(tmp_path / "ens"),
        ],
    )
    assert code == 3
    assert "diverged (seed0_lr1e+30)" in capsys.readouterr().err
    summary = json.loads((tmp_path / "ens" / "summary.json").read_text())
    assert summary["diverged_members"] == ["seed0_lr1e+30"]
