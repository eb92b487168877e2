"""The recording process: it writes what an in-process recorder would, it holds training back
when it falls behind, and a run stopped by Ctrl-C or by divergence leaves files that agree on
their last epoch."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

import config
import lab5
from recording import recorder, worker
from tests import ROOT

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


def test_the_worker_writes_what_an_in_process_recorder_writes(tmp_path):
    runs = {}
    for name, record in (("worker", recorder.start_in_worker), ("inline", in_process)):
        cfg = config.parse_config(
            "wgan_gp", [*SMALL, "--seeds", "2", "--out", str(tmp_path / name)]
        )
        assert lab5.train(cfg, record)["status"] == "completed"
        runs[name] = tmp_path / name
    for member in ("seed0", "seed1"):
        worker = runs["worker"] / member
        inline = runs["inline"] / member
        assert untimed(rows(worker)) == untimed(rows(inline)) and len(rows(worker)) == 4
        assert same_params(params(worker), params(inline))
        frames = sorted(p.name for p in (worker / "frames").iterdir())
        assert frames == sorted(p.name for p in (inline / "frames").iterdir()) and len(frames) == 4
        for frame in frames:
            assert np.array_equal(
                np.asarray(Image.open(worker / "frames" / frame)),
                np.asarray(Image.open(inline / "frames" / frame)),
            )
    clock = ("warm_up_s", "train_s", "record_s", "wall_s")
    summaries = [json.loads((runs[n] / "summary.json").read_text()) for n in ("worker", "inline")]
    assert [{k: v for k, v in s.items() if k not in clock} for s in summaries][0] == [
        {k: v for k, v in s.items() if k not in clock} for s in summaries
    ][1]


def test_a_slow_recorder_holds_training_back(monkeypatch):
    """The queue to the recorder is bounded: with a recorder that takes 0.1 s a message, sending
    QUEUE_SIZE + 10 messages must wait for about 10 of them to be recorded."""
    monkeypatch.setattr(recorder, "open_recorder", lambda run: {})
    monkeypatch.setattr(recorder, "handle", lambda rec, message: time.sleep(0.1) or [message["n"]])
    process = recorder.start_in_worker({})
    started = time.perf_counter()
    lines = [line for n in range(worker.QUEUE_SIZE + 10) for line in process.send({"n": n})]
    waited = time.perf_counter() - started
    lines += process.finish({"n": "end", "status": "completed"})
    assert waited > 0.1 * 8  # ten messages had to be recorded before the last one went in
    assert lines == [*range(worker.QUEUE_SIZE + 10), "end"]  # every reply, in order


def test_a_recorder_that_dies_stops_the_run(monkeypatch):
    monkeypatch.setattr(recorder, "open_recorder", lambda run: {})
    monkeypatch.setattr(recorder, "handle", lambda rec, message: os._exit(7))
    process = recorder.start_in_worker({})
    with pytest.raises(worker.WorkerStopped, match="exit code 7"):
        for _ in range(worker.QUEUE_SIZE + 5):
            process.send({})


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


def test_ctrl_c_leaves_a_folder_whose_files_agree_on_the_last_epoch(tmp_path):
    """A real run, interrupted from outside as a terminal's Ctrl-C does (SIGINT to the whole
    process group, the recorder included), keeps epochs 0..E with E's parameters."""
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
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "interrupted in epoch" in err and "Traceback" not in err
    epoch = json.loads((out / "summary.json").read_text())["epochs_done"]
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    assert epoch >= 3
    assert_files_agree(out, epoch)
    assert lab5.main("wgan", [*SMALL, "--epochs", str(epoch), "--out", str(tmp_path / "to")]) == 0
    assert same_params(params(out), params(tmp_path / "to"))


def test_a_diverged_ensemble_leaves_files_that_agree_on_the_last_good_epoch(tmp_path):
    out = tmp_path / "ens"
    code = lab5.main(
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
