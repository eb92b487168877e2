"""How real runs end when their disk fills or they are killed: a one-line error and a folder
that resumes, or, killed at any moment (compiling included), nothing of theirs left running.

A run's processes are found by a mark in their environment, which every process a run starts
inherits (its recorder, torch's compile workers), so that a process orphaned by the kill is
found as well as one still under the run."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import torch

from harness.main import main
from tests import ROOT
from tests.test_resume import assert_same_files

SMALL = (
    "--data ring8 --train-size 640 --test-size 200 --batch-size 32 --frame-every 1 "
    "--eval-every 2 --no-compile"
).split()
EPOCHS = 12
MARK = "LAB5_TEST_RUN"


def start(argv: list[str], mark: str, code=None, env=None, output=subprocess.PIPE):
    """`python variants/wgan_gp.py ARGV` (or `python -c CODE ARGV`), marked."""
    program = ["-c", code] if code else [str(ROOT / "variants" / "wgan_gp.py")]
    return subprocess.Popen(
        [sys.executable, *program, *argv],
        cwd=ROOT,
        env={**(env or os.environ), MARK: mark},
        stdout=output,
        stderr=output,
        text=True,
    )


def marked(mark: str) -> list[psutil.Process]:
    """The live processes that carry the mark."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARK) == mark and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:  # gone, or not ours to read
            continue
    return found


def left_after(mark: str, seconds: float) -> list[str]:
    """What still carries the mark after `seconds` (nothing, as soon as nothing does)."""
    deadline = time.monotonic() + seconds
    while (alive := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [" ".join(p.cmdline()[:4]) for p in alive]


# ---- a full disk ---------------------------------------------------------------------------


def mounted_tmpfs(folder: Path, megabytes: int) -> bool:
    """A small tmpfs at `folder`, where this process may mount one (root on Linux)."""
    folder.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
        capture_output=True,
    )
    return done.returncode == 0


# A full disk injected: the checkpoint of epoch 5 meets one, in the recorder (forked, so that it
# inherits the change), once; the resume after it writes as usual. Where a tmpfs mounts (root on
# Linux) the test also fills a real one.
ENOSPC_AT_EPOCH_5 = """
import errno, multiprocessing, os, sys
from harness import run_folder
from harness.main import main
multiprocessing.set_start_method("fork")
save = run_folder.save_torch
def full_at_5(path, obj):
    if path.name == "checkpoint.pt" and obj["epoch"] == 5:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    save(path, obj)
run_folder.save_torch = full_at_5
sys.exit(main("wgan_gp", sys.argv[1:]))
"""


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a 24 MB tmpfs, of which a ballast file leaves 2 MB free (None, None where no
    tmpfs can be mounted); unmounted after the test."""
    disk = tmp_path / "disk"
    if not mounted_tmpfs(disk, 24):
        yield None, None
        return
    ballast = disk / "ballast"
    ballast.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 2 * 2**20))
    yield disk, ballast
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("injected", [False, True], ids=["tmpfs", "injected"])
def test_a_full_disk_is_one_line_and_exit_4_and_the_run_resumes_once_there_is_room(
    tmp_path, request, injected
):
    """Frames every epoch fill a small tmpfs after a few epochs, or a full disk is injected at
    the checkpoint of epoch 5: exit 4 with one line that says which file, why, which checkpoint
    is intact and how to go on; the trainer and the recorder both ended; that checkpoint loads;
    with room again, --resume ends where an unstopped run ends."""
    disk, ballast = (None, None) if injected else request.getfixturevalue("small_disk")
    if not injected and disk is None:
        pytest.skip("no tmpfs to fill here (it needs root on Linux): the injected case runs")
    if injected and not hasattr(os, "fork"):
        pytest.skip("no fork to inject a full disk into the recorder")
    out = (disk or tmp_path) / "run"
    mark = uuid.uuid4().hex
    argv = [*SMALL, "--epochs", str(EPOCHS), "--out", str(out)]
    run = start(argv, mark, ENOSPC_AT_EPOCH_5 if injected else None)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 4, err
    (line,) = err.splitlines()
    assert line.startswith(f"error: cannot write {out}/") and "(No space left on device);" in line
    epoch = int(line.split("the checkpoint of epoch ")[1].split()[0])
    resume = f"python variants/wgan_gp.py --resume {out}"
    assert line.endswith(
        f"the checkpoint of epoch {epoch} is intact: once the file can be written, {resume}"
    )
    assert left_after(mark, 5) == []
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == epoch < EPOCHS
    if injected:
        assert epoch == 4 and f"cannot write {out / 'checkpoint.pt'} " in line
    else:
        assert disk in Path(line.split()[3]).parents
        ballast.unlink()
    assert main("wgan_gp", ["--resume", str(out)]) == 0
    reference = tmp_path / "reference"
    assert main("wgan_gp", [*SMALL, "--epochs", str(EPOCHS), "--out", str(reference)]) == 0
    assert_same_files(reference, out)


def test_a_full_disk_before_the_first_epoch_says_nothing_is_kept(tmp_path, small_disk):
    """Not even config.json fits: exit 4, one line, nothing running."""
    disk, ballast = small_disk
    if disk is None:
        pytest.skip("no tmpfs to fill here (it needs root on Linux)")
    filler = disk / "filler"
    filler.write_bytes(b"\0" * shutil.disk_usage(disk).free)
    mark = uuid.uuid4().hex
    run = start([*SMALL, "--epochs", "2", "--out", str(disk / "run")], mark)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 4, err
    assert err.startswith(f"error: cannot write {disk / 'run'}/") and err.count("\n") == 1
    assert "no checkpoint was written" in err and left_after(mark, 5) == []


# ---- killed at any moment ------------------------------------------------------------------


def kill_at_moments(tmp_path, moments: list[float], cache: Path | None = None) -> None:
    """Compiled runs two at a time, the main process of each SIGKILLed (alone: the rest must see
    to itself) at its moment after its start; 5 s later nothing of any of them may be alive."""
    env = {**os.environ, **({"TORCHINDUCTOR_CACHE_DIR": str(cache)} if cache else {})}
    argv = [*SMALL[:-1], "--epochs", "400"]  # compiled
    left = {}
    for pair in range(0, len(moments), 2):
        runs = {}
        started = time.monotonic()
        for moment in moments[pair : pair + 2]:
            mark = uuid.uuid4().hex
            out = ["--out", str(tmp_path / mark)]
            runs[moment] = (mark, start([*argv, *out], mark, env=env, output=subprocess.DEVNULL))
        for moment, (_, run) in runs.items():
            time.sleep(max(0.0, started + moment - time.monotonic()))
            run.kill()
        for moment, (mark, run) in runs.items():
            run.wait(timeout=60)
            left[moment] = left_after(mark, 5)
    assert {moment: alive for moment, alive in left.items() if alive} == {}


def test_a_run_killed_at_any_moment_leaves_no_process_behind(tmp_path):
    """Ten moments in its first 8 s: starting, its recorder starting and taking the first epoch
    (a large message, which a kill may cut in half), compiling, training."""
    rng = random.Random(30)
    kill_at_moments(tmp_path, sorted(rng.uniform(0.2, 8.0) for _ in range(10)))


@pytest.mark.slow
def test_a_run_killed_at_any_of_many_moments_with_a_cold_compile_leaves_no_process(tmp_path):
    """Forty moments in the first 25 s of runs that compile from an empty inductor cache (its
    compile workers started and busy): `pytest -m slow`."""
    rng = random.Random(31)
    moments = sorted(rng.uniform(0.2, 25.0) for _ in range(40))
    kill_at_moments(tmp_path, moments, cache=tmp_path / "inductor")
