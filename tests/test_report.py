"""The experiment report's arithmetic, on hand-made run folders."""

import argparse
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lab5
from errors import UserError
from experiments import processes
from experiments.report import (
    EXPERIMENTS,
    FIRST_DEFAULTS,
    PUBLISHED,
    finished_record,
    late_jump,
    member_results,
    plan_row,
    record_run,
    run_experiment,
    slug,
    table,
    target_table,
    toy_table,
    train_rows,
)
from harness.flags import FLAGS, parse_config


def fake_member(folder, w1_by_epoch, floor=0.02, fit=None, precision=0.9, recall=0.8, energy=None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"fit_factor": 2.0}))
    energy = energy or {}
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "w1", "precision", "energy"])
        writer.writeheader()
        for epoch in sorted({*w1_by_epoch, *energy}):
            writer.writerow(
                {
                    "epoch": epoch,
                    "w1": w1_by_epoch.get(epoch, ""),
                    "precision": precision,
                    "energy": energy.get(epoch, ""),
                }
            )
        writer.writerow({"epoch": 201, "w1": "", "precision": precision})  # an epoch without W1
    last = max(w1_by_epoch)
    (folder / "summary.json").write_text(
        json.dumps(
            {
                "noise_floor": {"w1": floor},
                "epochs_to_fit": fit,
                "final": {"w1": w1_by_epoch[last], "precision": precision, "recall": recall},
            }
        )
    )


def test_member_results_and_table(tmp_path):
    fake_member(tmp_path / "run" / "seed0", {30: 0.06, 70: 0.04, 200: 0.02}, fit=70)
    fake_member(
        tmp_path / "run" / "seed1", {30: 0.04, 70: 0.08, 200: 0.06}, fit=None, precision=0.5
    )
    results = member_results(tmp_path / "run")
    assert [r["final"] for r in results] == pytest.approx([1.0, 3.0])
    assert [r["at30"] for r in results] == pytest.approx([3.0, 2.0])
    assert [r["first"] for r in results] == [70, 30]
    lines = table({"a config": results}, epochs=200)
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:3] == ["a config", "2", "2.00 ± 1.00"]  # final W1 / floor: mean ± s.e.
    assert cells[3:5] == ["2.00", "0"]  # median; none beyond 5× the floor
    assert cells[5:7] == ["2.50 ± 0.50", "3.00 ± 1.00"]  # at epochs 30 and 70
    assert cells[7] == "50 ± 20 (2/2)"  # first within 2×: epochs 30 and 70
    assert cells[8] == "70 ± 0 (1/2)"  # one seed fitted, at epoch 70
    assert cells[9] == "0.70 ± 0.20"


def test_every_experiment_names_frames_it_trains():
    for spec in EXPERIMENTS.values():
        labels = [label for label, _, _ in spec["configs"]]
        assert set(spec["frames"]) <= set(labels) and len({slug(label) for label in labels}) == len(
            labels
        )


def test_collapsed_seeds_are_counted(tmp_path):
    fake_member(tmp_path / "run" / "seed0", {200: 0.02})
    fake_member(tmp_path / "run" / "seed1", {200: 0.03})
    fake_member(tmp_path / "run" / "seed2", {200: 0.40})  # 20× the floor
    lines = table({"c": member_results(tmp_path / "run")}, epochs=200)
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[2:5] == ["7.50 ± 6.25", "1.50", "1"]  # (1 + 1.5 + 20) / 3; sd 10.83 / √3


def test_a_diverged_configuration_reports_no_numbers(tmp_path):
    fake_member(tmp_path / "run" / "seed0", {30: 0.06, 70: 0.04}, fit=70)
    results = {"ok": member_results(tmp_path / "run"), "bad": member_results(tmp_path / "run")}
    lines = table(results, epochs=200, diverged={"bad": "diverged in epoch 71 (seed0)"})
    ok, bad = ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])
    assert ok[2] == "2.00 ± 0.00"
    assert bad[:3] == ["bad", "1", "diverged in epoch 71 (seed0)"] and set(bad[3:]) == {"—"}
    assert len(bad) == len(ok)


def finished(out: Path, status: str = "completed") -> None:
    """What a run leaves in its folder for the report to record."""
    out.mkdir(exist_ok=True)
    end = {"status": status, "epochs_done": 200, "diverged_members": None}
    (out / "summary.json").write_text(json.dumps(end))


def test_a_finished_run_is_reused_only_while_it_trains_the_same_thing(tmp_path, monkeypatch):
    """experiment.json holds what the command resolved to: the same command under changed
    defaults is not the same run, and a run that did not end is not recorded."""
    spec = EXPERIMENTS["variants"]
    row = plan_row("gan", [], spec, 200, [100, 101], None, tmp_path / "gan")
    assert finished_record(row) is None
    finished(row["out"], "interrupted")
    with pytest.raises(UserError, match="ended interrupted"):
        record_run(row)
    finished(row["out"])
    record_run(row)
    assert finished_record(row)["config"]["seed"] == 100
    first = FLAGS["batch_size"].default["gan"]
    monkeypatch.setitem(
        FLAGS,
        "batch_size",
        dataclasses.replace(
            FLAGS["batch_size"],
            default={**FLAGS["batch_size"].default, "gan": first * 2},
        ),
    )
    assert finished_record(plan_row("gan", [], spec, 200, [100, 101], None, row["out"])) is None


def test_the_report_trains_its_rows_as_the_trials_of_a_study(tmp_path, monkeypatch):
    """Two rows, two at once, each in a process of its own; a second call trains nothing."""
    monkeypatch.chdir(tmp_path)
    tiny = "--data ring8 --train-size 320 --test-size 200 --batch-size 32 --no-compile".split()
    spec = {"eval_every": 1, "frame_epochs": (2,)}
    rows = {
        label: plan_row("gan", [*tiny, "--lr", lr], spec, 2, [0], None, tmp_path / label)
        for label, lr in (("slow", "0.0001"), ("fast", "0.001"))
    }
    args = argparse.Namespace(
        label="t",
        seed=0,
        data=None,
        epochs=2,
        only=None,
        force=False,
        workers=2,
        gpus="",
        per_gpu=1,
        storage="sqlite:///runs/sweeps/optuna.db",
        beat=10.0,
    )
    train_rows(rows, "variants", args, seeds=1)
    for row in rows.values():
        assert record_run(row)["status"] == "completed"
        assert "lab5 gan:" in processes.log_path(row["out"]).read_text()
    stamps = [(r["out"] / "generator.pt").stat().st_mtime_ns for r in rows.values()]
    train_rows(rows, "variants", args, seeds=1)
    assert [(r["out"] / "generator.pt").stat().st_mtime_ns for r in rows.values()] == stamps


def test_a_row_with_bad_flags_stops_the_experiment_before_any_row_trains(tmp_path, monkeypatch):
    """Here `report.py fast_start --epochs 40` with a last row whose learning rate is -1."""
    monkeypatch.chdir(tmp_path)
    rows = [*EXPERIMENTS["fast_start"]["configs"], ("bad", "wgan_gp", ["--lr", "-1"])]
    monkeypatch.setitem(EXPERIMENTS["fast_start"], "configs", rows)
    args = argparse.Namespace(
        label="shipped",
        results=str(tmp_path / "results"),
        epochs=40,
        only=None,
        seed=0,
        seeds=2,
        data=None,
        force=False,
        no_train=False,
    )
    with pytest.raises(UserError, match="--lr must be a positive number"):
        run_experiment("fast_start", args)
    assert not (tmp_path / "runs").exists()


def test_the_first_defaults_and_every_experiment_s_rows_are_valid_flags():
    for variant, argv in FIRST_DEFAULTS.items():
        parse_config(variant, argv)
    for spec in EXPERIMENTS.values():  # with the epochs and seeds the report gives them
        for label, variant, argv in spec["configs"]:
            plan_row(variant, argv, spec, spec["epochs"], [0, 1, 2], None, Path(slug(label)))


def test_target_table_reads_each_target_off_the_members(tmp_path):
    # the energy of epoch 100 is not in the second half; its jumps are 3x and 12x
    fake_member(
        tmp_path / "run" / "seed0",
        {30: 0.03, 150: 0.02, 200: 0.02},
        energy={100: 1e-6, 101: 2e-3, 150: 1e-3, 200: 3e-3},
    )
    fake_member(
        tmp_path / "run" / "seed1",
        {30: 0.05, 150: 0.03, 200: 0.05},
        energy={100: 1.0, 150: 1e-3, 170: 1.2e-2},
    )
    lines = target_table({"fast": member_results(tmp_path / "run")}, 200)
    # at 30: 1.5 and 2.5; seed1 first within 2× at 150; final 1.0 and 2.5; last 50: 1.0, 2.0
    assert lines[2] == (
        "| fast | 2.00 (2.50) | 1 of 2 | 1.75 ± 0.75 (2.50) | 1 of 2 | "
        "1.50 (2.00) | 12.0× (1 of 2) |"
    )


def test_a_late_jump_is_a_rise_in_the_second_half_not_a_fall():
    # 1e-9 is in the first half; 5e-2 -> 1e-3 is a fall; 1e-3 -> 4e-3 the largest rise
    assert late_jump({90: 1e-9, 110: 5e-2, 150: 1e-3, 190: 4e-3, 200: 2e-3}, 200) == pytest.approx(
        4.0
    )


def test_toy_table_counts_modes_and_stands_beside_the_published_rows(tmp_path):
    """Mode metrics per seed in, the papers' columns out: mean ± s.e., how many runs captured
    every mode, the minutes, and every published row of the same mixture below ours."""
    for seed, (modes, hq, kl) in enumerate([(8, 0.97, 0.01), (7, 0.95, 0.05)]):
        member = tmp_path / "run" / f"seed{seed}"
        fake_member(member, {200: 0.02})
        summary = json.loads((member / "summary.json").read_text())
        summary["final"].update(modes=modes, hq=hq, reverse_kl=kl)
        summary["noise_floor"].update(draws=10, modes=8.0, hq=0.98976, reverse_kl=0.0013)
        (member / "summary.json").write_text(json.dumps(summary))
    label = "WGAN-GP, tuned"
    results = member_results(tmp_path / "run")
    lines = toy_table({label: results}, {label: 12.34}, "ring8", results[0]["floor"])
    ours = [c.strip() for c in lines[2].strip("|").split("|")]
    assert ours == [
        "WGAN-GP, tuned",
        "lab5",
        "2",
        "7.50 ± 0.50",
        "96.0 ± 1.0",
        "0.030 ± 0.020",
        "1/2",
        "1.00 ± 0.00",
        "1",
        "12.3",
    ]
    sampled = [{**r, "calls": calls} for r, calls in zip(results, (1.5, 2.5))]
    with_sampled = toy_table({"sampled": sampled}, {"sampled": None}, "ring8", results[0]["floor"])
    assert [c.strip() for c in with_sampled[2].strip("|").split("|")][-2:] == ["2.00", "—"]
    assert lines[0].count("modes (of 8)") == 1
    perfect = [c.strip() for c in lines[3].strip("|").split("|")]
    assert perfect[2:6] == ["10", "8.00", "99.0", "0.001"]  # fake_member's floor
    published = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]
    assert [row[0] for row in published] == [row[0] for row in PUBLISHED]
    assert published[1][:6] == [
        "PacGAN4",
        "PacGAN, Table 1",
        "10",
        "7.8 ± 0.1",
        "95.9 ± 1.4",
        "0.07 ± 0.02",
    ]
    assert published[4][2] == "5" and all(len(row) == len(ours) for row in published)
    grid = toy_table({label: results}, {label: 1.0}, "grid25", results[0]["floor"])
    assert "modes (of 25)" in grid[0] and grid[2].split("|")[7].strip() == "0/2"
    assert grid[5].split("|")[4:7] == [" 24.8 ± 0.2 ", " 93.6 ± 0.6 ", " 0.04 ± 0.01 "]


def test_the_toy_benchmarks_follow_the_protocol():
    """Ten seeds of every configuration, on the mixture the table is about, counted over the
    papers' 2,500 generated points."""
    for name in ("ring", "grid"):
        spec = EXPERIMENTS[name]
        assert spec["seeds"] == 10 and {v for _, v, _ in spec["configs"]} == {
            "gan",
            "wgan",
            "wgan_gp",
        }
        for _, variant, argv in spec["configs"]:
            cfg = parse_config(variant, argv)
            assert (cfg["data"], cfg["toy_size"], cfg["eval_size"]) == (spec["toy"], 100000, 2500)


def test_toy_profile_bands_and_a_saved_generator(tmp_path):
    """Points 0, 4 and 10 s.d. from their nearest mode fall one in each band; a saved generator
    whose last layer ignores the noise and outputs a mode lands every sample within 3 s.d."""
    from experiments.toy_profile import distance_shares, member_samples

    means = np.array([[0.0, 0.0], [1.0, 0.0]])
    std = 0.01
    points = np.array([[0.0, 0.0], [1.0, 4 * std], [0.0, -10 * std]])
    assert distance_shares(points, means, std) == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    member = tmp_path / "seed0"
    member.mkdir()
    (member / "config.json").write_text(json.dumps({"noise_dim": 3, "hidden": [5, 4]}))
    net = lab5.torch_module((3, 5, 4, 2))
    with torch.no_grad():
        net[-1].weight.zero_()
        net[-1].bias.copy_(torch.tensor([1.0, 0.0]))
    torch.save(net.state_dict(), member / "generator.pt")
    samples = member_samples(member, 500)
    assert samples.shape == (500, 2)
    assert distance_shares(samples, means, std) == pytest.approx([1, 0, 0])
