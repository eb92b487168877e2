"""The recording process: it writes what an in-process recorder would, it holds training back
when it falls behind, and a run stopped by Ctrl-C or by divergence leaves files that agree on
their last epoch."""

import csv
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from functools import partial

import numpy as np
import psutil
import pytest
import torch
from PIL import Image

import harness.main
from harness import recorder, worker
from harness.flags import parse_config
from harness.main import main
from harness.run_folder import frame_arrays
from tests import ROOT
from tests.conftest import posix_only

SMALL = (
    "--train-size 640 --test-size 200 --batch-size 32 --epochs 3 --frame-every 1 --no-compile"
).split()


def rows(folder):
    with open(folder / "metrics.csv") as f:
        return list(csv.DictReader(f))


def params(folder):
    return {name: torch.load(folder / name) for name in ("generator.pt", "critic.pt")}


def same_params(a, b):
    return all(torch.equal(a[name][k], b[name][k]) for name in a for k in a[name])


def untimed(table):
    """A table's rows without their timing."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in table]


def in_process(run):
    """The recorder in the training process, one message after the other."""
    handle = partial(recorder.handle, recorder.open_recorder(run))
    return worker.Worker(handle, handle)


# A run whose recorder starts by the start method given first (set as a program would set it)
RUN_STARTED_BY = """
import multiprocessing, sys
from harness.main import main
from harness.run_folder import frame_arrays
if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1])
    sys.exit(main("wgan_gp", sys.argv[2:]))
"""


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_the_worker_writes_what_an_in_process_recorder_writes(tmp_path, method):
    """By each start method (fork, forkserver, spawn: whichever this OS has) the recording
    process writes what the recorder writes in the training process, frame for frame."""
    runs = {name: tmp_path / name for name in (method, "inline")}
    argv = [*SMALL, "--seeds", "2"]
    cfg = parse_config("wgan_gp", [*argv, "--out", str(runs["inline"])])
    assert harness.main.train(cfg, in_process)["status"] == "completed"
    done = subprocess.run(
        [sys.executable, "-c", RUN_STARTED_BY, method, *argv, "--out", str(runs[method])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    for member in ("seed0", "seed1"):
        worker = runs[method] / member
        inline = runs["inline"] / member
        assert untimed(rows(worker)) == untimed(rows(inline)) and len(rows(worker)) == 4
        assert same_params(params(worker), params(inline))
        frames = sorted(p.name for p in (worker / "frames").glob("*.png"))
        assert frames == sorted(p.name for p in (inline / "frames").glob("*.png"))
        assert len(frames) == 4
        for frame in frames:
            assert np.array_equal(
                np.asarray(Image.open(worker / "frames" / frame)),
                np.asarray(Image.open(inline / "frames" / frame)),
            )
        arrays = [frame_arrays(folder) for folder in (worker, inline)]
        assert arrays[0].keys() == arrays[1].keys() and len(arrays[0]) == 4
        for epoch, saved in arrays[0].items():
            assert all(np.array_equal(saved[k], arrays[1][epoch][k]) for k in saved)
    clock = ("warm_up_s", "train_s", "record_s", "wall_s")
    summaries = [json.loads((runs[n] / "summary.json").read_text()) for n in (method, "inline")]
    assert [{k: v for k, v in s.items() if k not in clock} for s in summaries][0] == [
        {k: v for k, v in s.items() if k not in clock} for s in summaries
    ][1]


def nothing() -> dict:
    return {}


def slowly(state: dict, message: dict) -> list:
    time.sleep(0.1)
    return [message["n"]]


def dying(state: dict, message: dict) -> list:
    os._exit(7)


def test_a_slow_recorder_holds_training_back():
    """The queue to the recorder is bounded: with a recorder that takes 0.1 s a message, sending
    QUEUE_SIZE + 10 messages must wait for about 10 of them to be recorded."""
    process = worker.start_worker(partial(worker.serve, nothing, slowly))
    started = time.perf_counter()
    lines = [line for n in range(worker.QUEUE_SIZE + 10) for line in process.send({"n": n})]
    waited = time.perf_counter() - started
    lines += process.finish({"n": "end", "status": "completed"})
    assert waited > 0.1 * 8  # ten messages had to be recorded before the last one went in
    assert lines == [*range(worker.QUEUE_SIZE + 10), "end"]  # every reply, in order


def test_a_recorder_that_dies_stops_the_run():
    process = worker.start_worker(partial(worker.serve, nothing, dying))
    with pytest.raises(worker.WorkerStopped, match="exit code 7"):
        for _ in range(worker.QUEUE_SIZE + 5):
            process.send({})


# A trainer that sends its recorder a message larger than a pipe holds while the recorder is
# busy, then is killed in the middle of sending it: the recorder must end on its own.
KILLED_MID_MESSAGE = """
import multiprocessing, sys, time
from functools import partial
import numpy as np
import psutil
from harness import worker
from tests.test_recorder import busy_start, nothing_to_do
if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1])
    process = worker.start_worker(partial(worker.serve, busy_start, nothing_to_do))
    process.send({"big": np.ones(2**22)})  # 32 MB: the recorder reads it once it has started
    time.sleep(0.5)
    print(multiprocessing.active_children()[0].pid, flush=True)
    psutil.Process().kill()
"""


def busy_start() -> dict:
    time.sleep(1.5)
    return {}


def nothing_to_do(state: dict, message: dict) -> list:
    return []


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_a_recorder_whose_trainer_is_killed_mid_message_ends_on_its_own(method):
    """Its inbox's write end is the trainer's alone, so half a message ends in an end of file
    (it held a copy of that end through fork, and waited for the rest for ever)."""
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_MESSAGE, method],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and done.stdout, done.stderr
    recorder = int(done.stdout)
    deadline = time.monotonic() + 5
    while is_alive(recorder) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_alive(recorder)


def is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_files_agree(folder, epoch, frame_every=1):
    """metrics.csv, summary.json and the frames all end at `epoch`."""
    assert [int(r["epoch"]) for r in rows(folder)] == list(range(epoch + 1))
    assert json.loads((folder / "summary.json").read_text())["epochs_done"] == epoch
    frames = sorted(int(p.stem.split("_")[1]) for p in (folder / "frames").glob("*.png"))
    assert frames == list(range(0, epoch + 1, frame_every))
    assert not list(folder.rglob("*.tmp"))


# The script as a terminal's foreground job runs it: tests started as a background job (`cmd &`
# in a script) ignore SIGINT, and a child would inherit that and never see the Ctrl-C.
CTRL_C_AS_IN_A_TERMINAL = (
    "import runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@posix_only
@pytest.mark.parametrize(
    "how",
    [
        "ctrl-c",
        pytest.param(
            "sigterm",
            marks=pytest.mark.skipif(
                sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows"
            ),
        ),
    ],
)
def test_a_stop_signal_leaves_a_folder_whose_files_agree_on_the_last_epoch(tmp_path, how):
    """A real run, interrupted from outside as a terminal's Ctrl-C does (SIGINT to the whole
    process group, the recorder included) or as `kill` does (SIGTERM to the run alone), keeps
    epochs 0..E with E's parameters, says how to go on, and goes on to what an unbroken run of
    as many epochs gives."""
    out = tmp_path / "stopped"
    run = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CTRL_C_AS_IN_A_TERMINAL,
            ROOT / "variants" / "wgan.py",
            *SMALL,
            "--epochs",
            "500",
            "--out",
            out,
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not ((out / "metrics.csv").exists() and len(rows(out)) >= 4) and time.time() < deadline:
        time.sleep(0.2)
    if how == "ctrl-c":
        os.killpg(run.pid, signal.SIGINT)
    else:
        run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == {"ctrl-c": 130, "sigterm": 143}[how], err
    said = {"ctrl-c": "interrupted in epoch", "sigterm": "interrupted by SIGTERM in epoch"}[how]
    assert said in err and "Traceback" not in err
    assert f"to go on: python variants/wgan.py --resume {out}" in err
    summary = json.loads((out / "summary.json").read_text())
    epoch = summary["epochs_done"]
    assert summary["status"] == "interrupted" and epoch >= 3
    assert summary["stopped_by"] == {"ctrl-c": "SIGINT", "sigterm": "SIGTERM"}[how]
    assert_files_agree(out, epoch)
    assert main("wgan", [*SMALL, "--epochs", str(epoch), "--out", str(tmp_path / "to")]) == 0
    assert same_params(params(out), params(tmp_path / "to"))
    unbroken = tmp_path / "unbroken"
    more = ["--epochs", str(epoch + 2)]
    assert main("wgan", [*SMALL, *more, "--out", str(unbroken)]) == 0
    assert main("wgan", ["--resume", str(out), *more]) == 0
    assert untimed(rows(out)) == untimed(rows(unbroken))
    assert same_params(params(out), params(unbroken))


def test_a_diverged_ensemble_leaves_files_that_agree_on_the_last_good_epoch(tmp_path):
    out = tmp_path / "ens"
    code = main(
        "wgan",
        [
            *SMALL,
            "--epochs",
            "4",
            "--optimizer",
            "sgd",
            "--vary",
            "lr=1e-4,1e30",
            "--out",
            str(out),
        ],
    )
    assert code == 3
    summary = json.loads((out / "summary.json").read_text())
    epoch = summary["epochs_done"]
    assert summary["diverged_members"] == ["seed0_lr1e+30"] and epoch < 4
    for member in ("seed0_lr0.0001", "seed0_lr1e+30"):
        assert_files_agree(out / member, epoch)
        assert all(t.isfinite().all() for p in params(out / member).values() for t in p.values())
    assert [int(r["epoch"]) for r in rows_of(out / "ensemble.csv")] == list(range(epoch + 1))


def rows_of(path):
    with open(path) as f:
        return list(csv.DictReader(f))
