"""Checkpoints and --resume: a run stopped at any moment, by Ctrl-C or SIGKILL, even in the
middle of writing its checkpoint, and then resumed, ends with the same files as a run that was
never stopped; so does a completed run extended to more epochs. A resume that would change the
training, or whose checkpoint is missing or torn, is a one-line error that touches nothing."""

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.main import main
from tests import ROOT
from tests.conftest import posix_only

SMALL = (
    "--data ring8 --train-size 640 --test-size 200 --batch-size 32 --frame-every 4 "
    "--eval-every 2 --no-compile"
).split()
EPOCHS = 12


def table_without_timing(path) -> list[list[str]]:
    """A table's cells as written, less its timing column."""
    return cells_without_timing(Path(path).read_bytes())


def cells_without_timing(table: bytes) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(table.decode(), newline="")))
    keep = [i for i, name in enumerate(rows[0]) if name != "seconds"]
    return [[row[i] for i in keep] for row in rows]


def assert_same_files(a, b) -> None:
    """Two run folders (and their members' folders) hold the same tables (but for timing),
    byte-identical parameters and pixel-identical frames."""
    members = [m for m in sorted(a.iterdir()) if (m / "config.json").exists()]
    folders = [(a, b)] + [(m, b / m.name) for m in members]
    for x, y in folders:
        for table in ("metrics.csv", "ensemble.csv"):
            assert (x / table).exists() == (y / table).exists(), table
            if (x / table).exists():
                assert table_without_timing(y / table) == table_without_timing(x / table), table
        for name in ("generator.pt", "generator_raw.pt", "critic.pt"):
            assert (x / name).exists() == (y / name).exists()
            if (x / name).exists():
                assert (y / name).read_bytes() == (x / name).read_bytes(), y / name
        frames = sorted(p.name for p in (x / "frames").glob("*.png"))
        assert frames == sorted(p.name for p in (y / "frames").glob("*.png")), y
        for name in frames:
            assert np.array_equal(
                np.asarray(Image.open(x / "frames" / name)),
                np.asarray(Image.open(y / "frames" / name)),
            ), y / name


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The runs never stopped: one model and an ensemble of three, 12 epochs each."""
    root = tmp_path_factory.mktemp("uninterrupted")
    for name, extra in (("single", []), ("ensemble", ["--seeds", "3"])):
        argv = [*SMALL, *extra, "--epochs", str(EPOCHS), "--out", str(root / name)]
        assert main("wgan_gp", argv) == 0
    return root


RUN = "import sys; from harness.main import main; sys.exit(main('wgan_gp', sys.argv[1:]))"


def start(out, extra=(), code=None, flags=SMALL) -> subprocess.Popen:
    """A real run in a process group of its own, so that a kill takes its recorder too."""
    argv = [*flags, *extra, "--epochs", str(EPOCHS), "--out", str(out)]
    code = (
        code or "import sys; from harness.main import main; sys.exit(main('wgan_gp', sys.argv[1:]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def epochs_done(out) -> int:
    try:
        return json.loads((out / "summary.json").read_text())["epochs_done"]
    except (OSError, ValueError):
        return -1


def kill_after(run: subprocess.Popen, out, epoch: int, seconds: float) -> None:
    """SIGKILL the run's process group `seconds` after it has recorded `epoch` (-1: after its
    folder appears)."""
    deadline = time.time() + 120
    while not (out / "config.json").exists() or epochs_done(out) < epoch:
        assert time.time() < deadline and run.poll() is None, run.stderr.read()
        time.sleep(0.01)
    time.sleep(seconds)
    assert run.poll() is None, "the run ended before it could be killed"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=60)


def test_extending_a_completed_run_equals_a_longer_run(tmp_path, uninterrupted):
    out = tmp_path / "short"
    assert main("wgan_gp", [*SMALL, "--epochs", "6", "--out", str(out)]) == 0
    assert (out / "frames" / "epoch_0006.png").exists()  # its last epoch, not one of the 12's
    assert main("wgan_gp", ["--resume", str(out), "--epochs", str(EPOCHS)]) == 0
    assert_same_files(uninterrupted / "single", out)


@posix_only
@pytest.mark.parametrize("epoch", [-1, 0, 3, 8, 11])
def test_a_run_killed_at_any_moment_resumes_to_the_same_files(tmp_path, uninterrupted, epoch):
    """SIGKILL at a random moment after the folder appears, or after epoch 0 (training not yet
    begun), 3, 8 or 11 (the run finishing) is recorded: in a step, a frame, a checkpoint. A run
    killed after it completed has nothing left to do, and its resume says so."""
    out = tmp_path / "killed"
    kill_after(start(out), out, epoch, random.Random(epoch).uniform(0, 0.25))
    completed = (out / "summary.json").exists() and json.loads((out / "summary.json").read_text())[
        "status"
    ] == "completed"
    assert main("wgan_gp", ["--resume", str(out)]) == (2 if completed else 0)
    assert_same_files(uninterrupted / "single", out)


@posix_only
def test_an_ensemble_killed_mid_run_resumes_every_member(tmp_path, uninterrupted):
    out = tmp_path / "killed"
    kill_after(start(out, ["--seeds", "3"]), out, 5, random.Random(5).uniform(0, 0.25))
    assert main("wgan_gp", ["--resume", str(out)]) == 0
    assert_same_files(uninterrupted / "ensemble", out)


KILL_IN_CHECKPOINT = """
import os, signal, sys, torch
from harness.main import main
save = torch.save
def torn_save(obj, file, *args, **kwargs):
    if "checkpoint" in file.name and obj["epoch"] == 5:  # half a file, then SIGKILL to all
        buffer = __import__("io").BytesIO()
        save(obj, buffer)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        file.flush()
        os.killpg(0, signal.SIGKILL)
    return save(obj, file, *args, **kwargs)
torch.save = torn_save
sys.exit(main("wgan_gp", sys.argv[1:]))
"""


@posix_only
def test_a_run_killed_while_writing_its_checkpoint_resumes(tmp_path, uninterrupted):
    out = tmp_path / "torn"
    run = start(out, code=KILL_IN_CHECKPOINT)
    run.wait(timeout=120)
    assert run.returncode == -signal.SIGKILL
    assert main("wgan_gp", ["--resume", str(out)]) == 0
    assert_same_files(uninterrupted / "single", out)


@pytest.fixture
def stopped(tmp_path):
    """A run stopped after 4 of its 12 epochs, and a snapshot of its files' bytes."""
    out = tmp_path / "stopped"
    assert main("wgan_gp", [*SMALL, "--epochs", "4", "--out", str(out)]) == 0
    (out / "config.json").write_text(
        (out / "config.json").read_text().replace('"epochs": 4', f'"epochs": {EPOCHS}')
    )
    return out


def folder_bytes(out) -> dict:
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--lr", "0.001"], "--lr 0.001 would change the training of {out}, trained with 0.0001"),
        (["--seed", "3"], "--seed 3 would change the training of {out}, trained with 0"),
        (["--no-compile", "--threads", "2"], "--threads 2 would change"),
        (["--epochs", "3"], "has trained 4 epochs; --epochs N > 4 extends it"),
    ],
)
def test_a_resume_that_would_change_the_training_is_refused(stopped, capsys, argv, message):
    before = folder_bytes(stopped)
    assert main("wgan_gp", ["--resume", str(stopped), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message.format(out=stopped) in err
    assert folder_bytes(stopped) == before


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda out: (out / "checkpoint.pt").unlink(), "checkpoint.pt is missing"),
        (lambda out: (out / "checkpoint.pt").write_bytes(b"PK\x03\x04torn"), "is unreadable"),
        (
            lambda out: (out / "checkpoint.pt").write_bytes(
                (out / "checkpoint.pt").read_bytes()[:900]
            ),
            "is unreadable",
        ),
        (lambda out: torch.save({"epoch": 2}, out / "checkpoint.pt"), "is unreadable"),
        (lambda out: (out / "config.json").unlink(), "holds no lab5 run"),
    ],
)
def test_a_missing_or_torn_checkpoint_is_a_one_line_error(stopped, capsys, damage, message):
    damage(stopped)
    before = folder_bytes(stopped)
    assert main("wgan_gp", ["--resume", str(stopped)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and folder_bytes(stopped) == before


def test_another_variant_s_run_is_refused(stopped, capsys):
    assert main("wgan", ["--resume", str(stopped)]) == 2
    assert "python variants/wgan_gp.py" in capsys.readouterr().err


def test_the_checkpoint_loads_without_lab5(stopped):
    """Plain torch.load of plain tensors: the state, the random streams, the epoch."""
    saved = torch.load(io.BytesIO((stopped / "checkpoint.pt").read_bytes()), weights_only=True)
    assert saved["epoch"] == 4 and saved["rngs"].dtype == torch.uint8
    for name, params in (
        ("generator.pt", saved["state"]["ema"]["g"]),
        ("generator_raw.pt", saved["state"]["g"]),
    ):
        assert torch.equal(params["0.weight"][0], torch.load(stopped / name)["0.weight"])
    assert {"g", "d", "g_opt", "d_opt", "hyper", "ema"} <= saved["state"].keys()


def test_a_diverged_run_resumes_from_its_last_good_epoch(tmp_path):
    """A diverged ensemble resumes (from its last good epoch, as the kills above show any
    checkpoint is resumed from) and, with nothing changed, diverges at the same epoch: exit 3
    again, and the folder ends as it was, but for timings."""
    out = tmp_path / "diverged"
    argv = [*SMALL, "--epochs", "6", "--optimizer", "sgd", "--vary", "lr=1e-4,1e30"]
    assert main("wgan", [*argv, "--out", str(out)]) == 3
    before = folder_bytes(out)
    assert main("wgan", ["--resume", str(out)]) == 3
    after = folder_bytes(out)
    assert after.keys() == before.keys()
    assert json.loads(before[Path("summary.json")])["epochs_done"] < 6
    for path in before:
        assert same_but_timing(path, after[path], before[path]), path


TIMING = {"wall_s", "train_s", "warm_up_s", "record_s", "seconds"}


def same_but_timing(path: Path, a: bytes, b: bytes) -> bool:
    if path.suffix == ".csv":
        return cells_without_timing(a) == cells_without_timing(b)
    if path.suffix == ".json":  # a resumed run's config.json also says where it resumed from
        a, b = (
            {k: v for k, v in json.loads(x).items() if k not in {*TIMING, "resume"}} for x in (a, b)
        )
    return a == b


def test_a_run_with_a_moving_average_extends_to_the_same_files(tmp_path):
    """The generator's average and its step count are part of the checkpoint."""
    argv = [*SMALL, "--ema", "0.9", "--ema-start", "2"]
    assert main("wgan_gp", [*argv, "--epochs", "5", "--out", str(tmp_path / "long")]) == 0
    assert main("wgan_gp", [*argv, "--epochs", "3", "--out", str(tmp_path / "short")]) == 0
    assert main("wgan_gp", ["--resume", str(tmp_path / "short"), "--epochs", "5"]) == 0
    assert_same_files(tmp_path / "long", tmp_path / "short")
    raw, average = (
        torch.load(tmp_path / "short" / name) for name in ("generator_raw.pt", "generator.pt")
    )
    assert not torch.equal(raw["0.weight"], average["0.weight"])


COOLDOWN = ["--cooldown", "lr=0,gp_weight=0.1", "--cooldown-epochs", "6"]


@posix_only
def test_a_run_killed_in_its_cooldown_resumes_to_the_same_files(tmp_path):
    """The cooldown's values come from the config and the epoch, the same after a resume."""
    whole = tmp_path / "whole"
    out = tmp_path / "killed"
    assert main("wgan_gp", [*SMALL, *COOLDOWN, "--epochs", str(EPOCHS), "--out", str(whole)]) == 0
    kill_after(start(out, COOLDOWN), out, 8, random.Random(8).uniform(0, 0.25))
    assert main("wgan_gp", ["--resume", str(out)]) == 0
    assert_same_files(whole, out)


@posix_only
def test_a_compiled_run_killed_mid_run_resumes_to_the_same_files(tmp_path):
    """The epoch a default run compiles (one scan over its steps on the CPU), with a schedule,
    killed mid-run and resumed: the same bytes as the compiled run never stopped."""
    compiled = [flag for flag in SMALL if flag != "--no-compile"]
    whole = tmp_path / "whole"
    out = tmp_path / "killed"
    argv = [*compiled, *COOLDOWN, "--epochs", str(EPOCHS), "--out", str(whole)]
    assert main("wgan_gp", argv) == 0
    kill_after(start(out, COOLDOWN, flags=compiled), out, 4, random.Random(4).uniform(0, 0.05))
    assert 4 <= epochs_done(out) < EPOCHS
    assert main("wgan_gp", ["--resume", str(out)]) == 0
    assert_same_files(whole, out)


def test_a_cooled_down_run_is_not_extended(tmp_path, capsys):
    """Its last epochs were the cooldown's: more epochs would make it a different schedule."""
    out = tmp_path / "cooled"
    assert main("wgan_gp", [*SMALL, *COOLDOWN, "--epochs", "6", "--out", str(out)]) == 0
    before = folder_bytes(out)
    assert main("wgan_gp", ["--resume", str(out), "--epochs", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "cools down over the last 6 of its 6 epochs" in err and folder_bytes(out) == before
