"""Sweeps on Optuna. The grid, the ranges and the table as functions; then, with real drivers
training tiny runs in real processes on a real database (SQLite, Optuna's journal file and a
PostgreSQL server started here), that a grid trains each point exactly once however its
drivers are killed or shared, and that the pruner stops a hopeless point and says so."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import psutil
import pytest
from optuna.trial import TrialState

from errors import UserError
from experiments import processes, runner
from experiments.prune_replay import kept_best, replay, share
from experiments.sweep import (
    checked_sweep,
    grid_axes,
    grid_points,
    parse_args,
    parse_range,
    point_flags,
    rows,
    sweep_command,
    table,
    without_pruning,
)
from harness.run_folder import is_locked
from tests import ROOT

TINY = "--data ring8 --train-size 320 --test-size 200 --batch-size 32 --no-compile".split()
SQLITE = "sqlite:///runs/sweeps/optuna.db"  # the default


def test_a_grid_is_the_product_of_its_flags_values():
    points = grid_points(grid_axes(["n-critic=1,5", "init=torch"]))
    assert points == [{"n-critic": "1", "init": "torch"}, {"n-critic": "5", "init": "torch"}]
    assert grid_points(grid_axes([])) == [{}]


def test_a_value_holding_an_equals_sign_is_one_value_and_spaces_make_words():
    assert grid_points(grid_axes(["vary=ema=0,0.99"])) == [{"vary": "ema=0,0.99"}]
    assert [point_flags(p) for p in grid_points(grid_axes(["betas=0.5 0.9,0.9 0.999"]))] == [
        ["--betas", "0.5", "0.9"],
        ["--betas", "0.9", "0.999"],
    ]


def test_ranges_parse_and_bad_ones_say_what_is_expected():
    assert parse_range("lr=1e-5:1e-3:log") == ("lr", 1e-5, 1e-3, True)
    assert parse_range("gp-weight=0.1:1") == ("gp-weight", 0.1, 1.0, False)
    for bad in ("lr=1e-3", "lr=1e-3:1e-5", "lr=a:b", "lr=1:2:ln"):
        with pytest.raises(UserError, match="expected FLAG=LOW:HIGH"):
            parse_range(bad)


def member(name, final, first, w1):
    return {"name": name, "final": final, "first": first, "fit": None, "w1_by_epoch": w1}


RECORDS = [
    {
        "flags": "--batch-size 16 --vary ema=0,0.99",
        "state": "complete",
        "cpu_s": 60.0,
        "members": [
            member("seed0_ema0", 3.0, 40, {30: 2.5, 70: 1.9, 75: 3.0}),
            member("seed0_ema0.99", 1.2, 20, {30: 1.5, 70: 1.1, 75: 1.2}),
            member("seed1_ema0", 5.0, None, {30: 4.0, 70: 3.0, 75: 5.0}),
            member("seed1_ema0.99", 1.4, 25, {30: 1.9, 70: 1.3, 75: 1.4}),
        ],
    },
    {
        "flags": "--batch-size 32",
        "state": "complete",
        "cpu_s": 30.0,
        "members": [
            member("seed0", 2.0, 50, {30: 3.0, 70: 2.0}),
            member("seed1", 2.2, 60, {30: 3.2}),
        ],
    },
    {"flags": "--batch-size 64", "state": "pruned", "pruned_at": 45, "cpu_s": 30.0},
]


def test_rows_split_a_point_by_its_varied_value():
    got = rows(RECORDS)
    assert list(got) == ["--batch-size 16 ema0", "--batch-size 16 ema0.99", "--batch-size 32"]
    assert [m["final"] for m in got["--batch-size 16 ema0.99"]] == [1.2, 1.4]


def test_the_table_orders_by_the_objective_and_counts_what_did_not_complete():
    lines = table(RECORDS).splitlines()
    # the objective: each seed's mean over its last five scores (here 1.27 and 1.53)
    assert lines[2] == (
        "| --batch-size 16 ema0.99 | 2 | 1.70 (1.90) | 1.20 (1.30) | 1.30 ± 0.10 (1.40) "
        "| 1.40 ± 0.13 | 25 |"
    )
    assert lines[3].startswith("| --batch-size 32 | 2 | 3.10 (3.20) | — |")  # 70 not reached
    assert lines[4].startswith("| --batch-size 16 ema0 |") and lines[4].endswith("| never (1) |")
    assert (
        lines[6] == "2 completed, 1 pruned, 0 failed; 0 stopped and queued again; 2.0 CPU-minutes"
    )
    assert lines[7] == "- pruned at epoch 45: --batch-size 64"


def test_a_short_sweep_s_table_shows_the_epochs_it_reached_and_ranks_by_trained_epochs():
    """A 10-epoch sweep scored every 5 epochs: no column for epochs 30 and 70, and the
    objective (the number the table ranks by) leaves out the untrained epoch 0."""
    short = [
        {
            "flags": f"--batch-size {batch}",
            "state": "complete",
            "members": [
                member(f"wgan_gp_batch-size_{batch}", final, 5, {0: 54.0, 5: at5, 10: final})
            ],
        }
        for batch, at5, final in ((16, 8.0, 5.74), (32, 3.0, 7.0))
    ]
    lines = table(short).splitlines()
    assert "at epoch" not in lines[0] and "objective: last 5 scores" in lines[0]
    assert lines[2] == "| --batch-size 32 | 1 | 7.00 ± 0.00 (7.00) | 5.00 ± 0.00 | 5 |"
    assert lines[3] == "| --batch-size 16 | 1 | 5.74 ± 0.00 (5.74) | 6.87 ± 0.00 | 5 |"


@pytest.mark.parametrize("epochs,pruned", [("10", False), ("40", False), ("41", True)])
def test_a_sweep_too_short_to_prune_is_named_and_run_as_unpruned(epochs, pruned, capsys):
    argv = ["wgan_gp", "--seeds", "1", "--grid", "batch-size=16,32", "--", "--epochs", epochs]
    args = parse_args(argv)
    axes, ranges, _ = checked_sweep(args)
    command = sweep_command(without_pruning(args, axes, ranges))
    assert ("--prune-after 40" in command) == pruned and ("--no-prune" in command) != pruned
    note = f"note: --prune-after 40 is not before the trials' last epoch ({epochs}):"
    assert (note in capsys.readouterr().out) != pruned


def test_workers_default_to_what_the_cores_take_and_more_is_warned_of(monkeypatch, capsys):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert parse_args(["wgan_gp"]).workers == 1
    assert runner.crowded_warning(parse_args(["wgan_gp", "--workers", "1"])) is None
    warning = runner.crowded_warning(parse_args(["wgan_gp", "--workers", "2"]))
    assert warning.startswith("warning: --workers 2 on 2 CPU cores: each run trains on one core")
    assert runner.crowded_warning(parse_args(["wgan_gp", "--workers", "4", "--gpus", "0"])) is None
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert parse_args(["wgan_gp"]).workers == 8
    with pytest.raises(SystemExit):
        parse_args(["wgan_gp", "--help"])
    assert "(default: 8; this one has 16 cores" in " ".join(capsys.readouterr().out.split())


def finished_trial(number: int, scores: dict[int, float]) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(
        value=scores[max(scores)], intermediate_values=scores, user_attrs={"cpu_s": 60.0}
    )
    trial.number = number
    return trial


def test_the_pruners_replay_stops_what_the_pruner_would_and_counts_its_cpu():
    """One trial at a time: the median pruner waits for two to complete, then stops the third
    at its first score above their median (epoch 10); it spent half its CPU time."""
    trials = [
        finished_trial(0, {0: 5.0, 10: 2.0, 20: 1.0}),
        finished_trial(1, {0: 5.0, 10: 3.0, 20: 2.0}),
        finished_trial(2, {0: 5.0, 10: 4.0, 20: 0.5}),  # would have ended best
    ]
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    ended = replay(trials, pruner, workers=1)
    assert ended == {0: 20, 1: 20, 2: 10}
    assert share(trials, ended) == pytest.approx((60 + 60 + 30) / 180)
    assert kept_best(trials, ended).number == 0


# ---- real drivers, real runs, real databases ----------------------------------------------


def ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start(cwd: Path, *args: str, background: bool = False, code: str = "") -> subprocess.Popen:
    """A driver in a session of its own: a kill of it alone leaves its runs to end by
    themselves (they watch it). In the background (`cmd &` in a script) it starts with Ctrl-C's
    signal ignored, as its runs do too. `code`: the driver as `python -c CODE`."""
    program = ["-c", code] if code else [str(ROOT / "experiments" / "sweep.py")]
    return subprocess.Popen(
        [sys.executable, *program, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=ignore_ctrl_c if background else None,
    )


def finish(driver: subprocess.Popen) -> str:
    out = driver.communicate(timeout=600)[0]
    assert driver.returncode == 0, out
    return out


def trials(cwd: Path, name: str, storage: str = SQLITE) -> list[optuna.trial.FrozenTrial]:
    if storage.startswith("sqlite:///"):  # relative to the drivers' folder
        storage = f"sqlite:///{cwd / storage.removeprefix('sqlite:///')}"
    if storage.startswith("journal:"):
        path = cwd / storage.removeprefix("journal:")
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(path))
        )
    return optuna.load_study(study_name=name, storage=storage).trials


def summary(folder: Path) -> dict:
    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def objective_from_files(folder: Path) -> float:
    """The mean over the last five scored epochs (trained ones: not epoch 0) of the members'
    mean W1 / floor, read from the run's files here, apart from the code under test."""
    floor = summary(folder)["noise_floor"]["w1"]
    curves = []
    for seed in sorted(folder.glob("seed*")):
        with open(seed / "metrics.csv", newline="") as f:
            curves.append({int(r["epoch"]): float(r["w1"]) for r in csv.DictReader(f) if r["w1"]})
    epochs = sorted(set.intersection(*(set(c) for c in curves)) - {0})[-5:]
    return float(np.mean([np.mean([c[e] for c in curves]) / floor for e in epochs]))


def test_a_grid_trains_each_point_once_and_a_rerun_trains_nothing(tmp_path):
    """Each point is tried once: one trains (its objective what its files say), one fails as
    it starts (a test set larger than the distances take) and is reported, not tried again;
    the same command again only prints the table."""
    args = ["gan", "--seeds", "2", "--grid", "test-size=200,9000", "--study", "g"]
    args += ["--", "--data", "ring8", "--train-size", "320", "--no-compile"]
    args += ["--epochs", "4", "--eval-every", "1"]
    out = finish(start(tmp_path, *args))
    by_size = {t.params["test-size"]: t for t in trials(tmp_path, "g")}
    assert list(by_size) == ["200", "9000"]
    done = by_size["200"]
    assert done.state == TrialState.COMPLETE and done.user_attrs["cpu_s"] > 0
    assert done.value == pytest.approx(objective_from_files(tmp_path / done.user_attrs["folder"]))
    failed = by_size["9000"]
    assert failed.state == TrialState.FAIL and failed.user_attrs["exit"] == 2
    assert f"trial {failed.number} (test-size=9000): failed (not started, exit 2" in out
    assert "1 completed, 0 pruned, 1 failed" in out
    assert "- failed (not started): --test-size 9000, see runs/sweeps/g/" in out
    params = sorted(tmp_path.glob("runs/sweeps/g/*/seed*/generator.pt"))
    stamps = [p.stat().st_mtime_ns for p in params]
    again = finish(start(tmp_path, *args))
    assert len(trials(tmp_path, "g")) == 2 and "trial " not in again
    assert [p.stat().st_mtime_ns for p in params] == stamps and len(params) == 2
    assert "1 completed, 0 pruned, 1 failed" in again


def wait_for(condition, what: str, seconds: float = 300):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_search_runs_its_trials_with_values_from_its_ranges(tmp_path):
    """TPE draws each trial's values within the ranges (a whole number for a whole flag), and
    the run trains what its trial drew."""
    args = ["gan", "--seeds", "1", "--range", "lr=0.0001:0.001:log", "--range", "n-critic=1:3"]
    args += ["--trials", "2", "--study", "r", "--", *TINY, "--epochs", "2"]
    finish(start(tmp_path, *args))
    done = trials(tmp_path, "r")
    assert len(done) == 2 and {t.state for t in done} == {TrialState.COMPLETE}
    for t in done:
        assert 1e-4 <= t.params["lr"] <= 1e-3 and t.params["n-critic"] in (1, 2, 3)
        config = json.loads((tmp_path / t.user_attrs["folder"] / "config.json").read_text())
        assert (config["lr"], config["n_critic"]) == (t.params["lr"], t.params["n-critic"])


def test_a_killed_driver_s_grid_completes_on_rerun_with_no_point_lost_or_trained_twice(tmp_path):
    """SIGKILL the driver in the middle of its first run: the run ends with it (as by Ctrl-C,
    keeping its checkpoint); the rerun sees the trial's driver fall silent, queues the point
    again, goes on with its run from the checkpoint, and trains the others once each."""
    lrs = ["0.0001", "0.0002"]
    args = ["gan", "--seeds", "2", "--grid", f"lr={','.join(lrs)}", "--workers", "1"]
    args += ["--no-prune", "--beat", "1", "--study", "k"]
    args += ["--", *TINY, "--epochs", "20", "--eval-every", "5"]
    driver = start(tmp_path, *args)
    folder = tmp_path / "runs/sweeps/k/gan_lr_0.0001"
    wait_for(lambda: summary(folder).get("epochs_done", 0) >= 3, "the first run's epoch 3")
    psutil.Process(driver.pid).kill()  # SIGKILL, or TerminateProcess on Windows
    driver.wait()
    wait_for(lambda: not is_locked(folder), "the orphaned run to end", 60)
    stopped_at = summary(folder)["epochs_done"]
    assert summary(folder)["status"] == "interrupted" and stopped_at < 20
    out = finish(start(tmp_path, *args))
    assert "fell silent; queued again" in out
    done = trials(tmp_path, "k")
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    assert sorted(t.params["lr"] for t in complete) == lrs  # each point once
    (failed,) = [t for t in done if t.state == TrialState.FAIL]
    assert failed.params["lr"] == "0.0001"
    retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
    assert [retried(t) for t in complete if t.params["lr"] == "0.0001"] == [failed.number]
    log = processes.log_path(folder).read_text()
    assert "resuming runs/sweeps/k/gan_lr_0.0001 from epoch" in log
    assert log.count("lab5 gan:") == 2
    assert summary(folder)["status"] == "completed" and summary(folder)["epochs_done"] == 20


# The sweep's driver, but the hopeless point's run is far too long to finish before the driver
# reads its first rung, however fast the machine: the others train 16 epochs, it 100,000.
HOPELESS_IS_LONG = """
import sys
from experiments import sweep
make_job = sweep.make_job
def longer_if_hopeless(*args):
    job = make_job(*args)
    def trial_job(trial):
        made = job(trial)
        if trial.params["lr"] == "1e-12":
            made.flags += ["--epochs", "100000"]
        return made
    return trial_job
sweep.make_job = longer_if_hopeless
sys.exit(sweep.main(sys.argv[1:]))
"""


def test_a_hopeless_point_is_pruned_its_run_stopped_and_its_folder_marked(tmp_path):
    """Two points that learn train first, one at a time; the third, at a learning rate that
    moves nothing, is worse than both at every epoch: successive halving (the default) stops
    it at a rung, not being the best of three. It stops as by Ctrl-C, even under a driver
    started in the background, which ignores Ctrl-C."""
    args = ["gan", "--seeds", "2", "--grid", "lr=0.0005,0.0002,1e-12", "--workers", "1"]
    args += ["--prune-after", "2", "--study", "p"]
    args += ["--", *TINY, "--epochs", "16", "--eval-every", "2"]
    background = sys.platform != "win32"  # Windows has no Ctrl-C to ignore in a child
    out = finish(start(tmp_path, *args, background=background, code=HOPELESS_IS_LONG))
    by_lr = {t.params["lr"]: t for t in trials(tmp_path, "p")}
    assert by_lr["0.0005"].state == TrialState.COMPLETE  # the first goes on alone
    pruned = by_lr["1e-12"]
    assert pruned.state == TrialState.PRUNED and pruned.user_attrs["pruned_at"] >= 2
    folder = tmp_path / pruned.user_attrs["folder"]
    assert json.loads((folder / "config.json").read_text())["epochs"] == 100000
    assert not psutil.pid_exists(pruned.user_attrs["pid"])  # its run is gone
    if hasattr(os, "killpg"):  # and its recorder with it: its process group is empty
        with pytest.raises(ProcessLookupError):
            os.killpg(pruned.user_attrs["pid"], 0)
    assert summary(folder)["status"] == "interrupted"
    marked = json.loads((folder / "sweep.json").read_text())
    epoch = pruned.user_attrs["pruned_at"]
    assert marked == {"study": "p", "trial": pruned.number, "state": "pruned", "epoch": epoch}
    assert f"trial {pruned.number} (lr=1e-12): pruned at epoch {epoch}" in out


def claim_all(url: str, name: str, out) -> None:
    """A driver's claims, as fast as it can make them, until the queue is empty."""
    storage = runner.make_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    claimed = []
    while (trial := runner.claim(study, storage)) is not None:
        claimed.append(trial.number)
    out.put(claimed)


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_drivers_claiming_at_once_never_take_the_same_trial(tmp_path, storage):
    """Four processes empty a queue of 60 trials at once: each trial is taken exactly once
    (on SQLite only because every transaction takes the write lock at its start)."""
    url = {"sqlite": f"sqlite:///{tmp_path}/q.db", "journal": f"journal:{tmp_path}/q.log"}[storage]
    study = optuna.create_study(storage=runner.make_storage(url), study_name="q")
    for x in range(60):
        study.enqueue_trial({"x": x})
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    drivers = [context.Process(target=claim_all, args=(url, "q", out)) for _ in range(4)]
    for driver in drivers:
        driver.start()
    claimed = [n for _ in drivers for n in out.get(timeout=300)]
    for driver in drivers:
        driver.join()
    assert sorted(claimed) == list(range(60))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of this test's own, in a temporary folder, on a free port of
    localhost (as the postgres user where the tests run as root: the server refuses root)."""
    found = shutil.which("pg_ctl") or next(
        iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))), None
    )
    if not found:
        pytest.skip("no PostgreSQL server installed (Debian: apt install postgresql)")
    bin_dir = Path(found).resolve().parent
    root = Path(tempfile.mkdtemp(prefix="lab5-postgres-"))
    as_user = []
    if os.getuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"
    server = f"-k {root} -p {port} -c listen_addresses=localhost"
    steps = [
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "lab5", "--auth=trust"],
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-o",
            server,
            "-w",
            "start",
        ],
        [str(bin_dir / "createdb"), "-h", "localhost", "-p", str(port), "-U", "lab5", "sweeps"],
    ]
    for step in steps:
        done = subprocess.run([*as_user, *step], capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"PostgreSQL did not start: {step[0]}: {done.stderr.strip()[-300:]}")
    yield f"postgresql://lab5@localhost:{port}/sweeps"
    subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
        capture_output=True,
    )
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("storage", ["sqlite", "journal", "postgresql"])
def test_two_drivers_started_at_once_train_every_point_exactly_once(tmp_path, storage, request):
    url = {"sqlite": SQLITE, "journal": "journal:sweeps.log"}.get(storage)
    url = url or request.getfixturevalue("postgres")
    lrs = ["0.0001", "0.0002", "0.0003"]
    args = ["gan", "--seeds", "1", "--grid", f"lr={','.join(lrs)}", "--workers", "1"]
    args += ["--storage", url, "--study", f"two-{tmp_path.name}", "--", *TINY, "--epochs", "2"]
    drivers = [start(tmp_path, *args) for _ in range(2)]
    outs = [finish(d) for d in drivers]
    done = trials(tmp_path, f"two-{tmp_path.name}", url)
    assert sorted(t.params["lr"] for t in done) == lrs  # no point twice, none lost
    assert {t.state for t in done} == {TrialState.COMPLETE}
    for lr in lrs:  # and each run started once
        log = tmp_path / f"runs/sweeps/two-{tmp_path.name}/gan_lr_{lr}.log"
        assert log.read_text().count("lab5 gan:") == 1
    assert all(": completed" in out for out in outs)  # both drivers trained some
