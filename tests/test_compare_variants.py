"""The lab's question in one command: the three variants at matched generator updates, their
figure, their GIF side by side and a verdict whose every number is the runs' own, read back
here from their metrics.csv files; a second run of the command trains nothing again."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.compare_variants import schedule
from tests import ROOT
from tests.conftest import posix_only

VARIANTS = {"gan": "GAN", "wgan": "WGAN", "wgan_gp": "WGAN-GP"}
TINY = "--train-size 640 --test-size 200 --no-compile".split()


@pytest.mark.parametrize(
    "steps,updates",
    [
        ({"gan": 218, "wgan": 109, "wgan_gp": 437}, 87400),
        ({"gan": 53, "wgan": 26, "wgan_gp": 106}, 5000),
    ],
)
def test_the_variants_are_scored_at_the_same_updates_to_within_half_an_epoch(steps, updates):
    scores, every = schedule(steps, updates)
    interval = {v: every[v] * steps[v] for v in steps}
    assert abs(scores * max(interval.values()) - updates) <= max(interval.values()) / 2
    for v in steps:  # each variant's interval within half of its own epoch of the longest's
        assert abs(interval[v] - max(interval.values())) <= steps[v] / 2


def compare(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, ROOT / "experiments" / "compare_variants.py", "--seeds", "2"]
    argv += ["--updates", "200", "--out", "runs/compare_variants", *flags, "--", *TINY]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def ratios_by_updates(run: Path) -> dict[int, list[float]]:
    """Each member's W1 / floor at each scored epoch, keyed by the generator updates by then,
    from the run's files alone."""
    config = json.loads((run / "config.json").read_text())
    found: dict[int, list[float]] = {}
    for member in sorted(run.glob("seed*")):
        floor = json.loads((member / "summary.json").read_text())["noise_floor"]["w1"]
        with open(member / "metrics.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row["w1"]:
                    updates = int(row["epoch"]) * config["steps_per_epoch"]
                    found.setdefault(updates, []).append(float(row["w1"]) / floor)
    return found


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    done = compare(folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, done.stdout


def test_every_variant_trains_the_same_generator_updates_and_is_scored_at_them(compared):
    folder, _ = compared
    out = folder / "runs" / "compare_variants"
    trained = {}
    for variant in VARIANTS:
        config = json.loads((out / variant / "config.json").read_text())
        summary = json.loads((out / variant / "summary.json").read_text())
        assert summary["status"] == "completed" and config["seeds"] == 2
        trained[variant] = summary["epochs_done"] * config["steps_per_epoch"]
        assert sorted(ratios_by_updates(out / variant))[-1] == trained[variant]
    assert set(trained.values()) == {200}  # 640 points: 20, 10 and 40 updates an epoch


def test_the_verdict_s_numbers_are_the_runs_own(compared):
    folder, said = compared
    out = folder / "runs" / "compare_variants"
    verdict = (out / "verdict.md").read_text()
    assert verdict in said + "\n"  # printed as written
    final = {t: ratios_by_updates(out / v)[200] for v, t in VARIANTS.items()}
    ranked = sorted(final, key=lambda t: np.mean(final[t]))
    numbers = ", ".join(
        f"{t} {np.mean(final[t]):.2f}× ± {np.std(final[t], ddof=1) / np.sqrt(2):.2f}"
        for t in ranked
    )
    assert f"- at 200 generator updates: {numbers}" in verdict
    best = re.search(r"^- (\S+) is best \(by its seeds' mean\) at every score", verdict, re.M)
    assert best and best[1] == ranked[0]


def test_the_figure_the_gif_and_the_page_show_the_three(compared):
    folder, _ = compared
    out = folder / "runs" / "compare_variants"
    gif = Image.open(out / "compare.gif")
    frame = Image.open(out / "gan" / "seed0" / "frames" / "epoch_0000.png")
    assert gif.n_frames == 6 and gif.size[0] == 3 * frame.size[0]  # scores 0..5, side by side
    assert Image.open(out / "fit.png").size[0] > 0
    page = (folder / "runs" / "index.html").read_text()
    assert "Which variant fits best?" in page and 'src="compare_variants/compare.gif"' in page
    assert all(f'data-run="compare_variants/{v}"' in page for v in VARIANTS)


def test_the_same_command_again_trains_nothing_and_other_settings_train_again(compared):
    folder, _ = compared
    out = folder / "runs" / "compare_variants"
    stamps = {v: (out / v / "checkpoint.pt").stat().st_mtime_ns for v in VARIANTS}
    again = compare(folder)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("trained already with these settings") == 3
    assert {v: (out / v / "checkpoint.pt").stat().st_mtime_ns for v in VARIANTS} == stamps
    other = compare(folder, "--updates", "240")
    assert other.returncode == 0 and "trained already" not in other.stdout
    assert "# Which variant fits best? 2 seeds each, 240 generator updates" in other.stdout


@posix_only
def test_ctrl_c_then_the_same_command_goes_on_where_it_stopped(tmp_path):
    argv = [sys.executable, ROOT / "experiments" / "compare_variants.py", "--seeds", "1"]
    argv += ["--updates", "1000", "--", *TINY]
    started = subprocess.Popen(
        argv,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    for line in started.stdout:  # the first variant's first scored epoch: stop it there
        if line.startswith("epoch    1/"):
            os.killpg(started.pid, signal.SIGINT)
            break
    said = started.communicate(timeout=120)[0]
    assert started.returncode == 130, said
    assert said.endswith("interrupted: the same command goes on where it stopped\n")
    summary = json.loads((tmp_path / "runs/compare_variants/gan/summary.json").read_text())
    assert (
        summary["status"] == "interrupted"
        and not (tmp_path / "runs/compare_variants/wgan").exists()
    )
    again = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "python variants/gan.py --resume runs/compare_variants/gan" in again.stdout
    assert f"resuming runs/compare_variants/gan from epoch {summary['epochs_done']}" in again.stdout
