"""lab5 where Python has less than on Linux: as on Windows (no fcntl, no fork, the spawn start
method), with no C++ compiler, and with the recorder started by each start method.

"As on Windows" is a folder on PYTHONPATH holding a sitecustomize.py that takes from every
Python started under it (the recorder and a sweep's runs too) what Windows has not: fcntl,
os.fork and the calls that only POSIX has, and sets multiprocessing's start method to spawn.
Real processes, real runs: nothing of the OS is mocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.hardware import compiler_fix
from tests import ROOT

AS_ON_WINDOWS = """
import multiprocessing, os, sys
sys.modules["fcntl"] = None  # import fcntl raises ImportError, as on Windows
# (torch registers fork hooks on every OS but Windows: os.register_at_fork stays)
for name in ("fork", "forkpty", "wait4", "killpg", "getpgid", "setsid"):
    if hasattr(os, name):
        delattr(os, name)
multiprocessing.set_start_method("spawn")
"""
TINY = "--train-size 640 --test-size 200 --batch-size 32 --frame-every 1 --no-compile".split()

# Every module of the repository, imported by name (the scripts of variants/ by path), then a
# 3-epoch ensemble of two trained and resumed to 4, in this one process (the recorder spawned)
IMPORT_AND_TRAIN = """
import importlib, runpy, sys
from pathlib import Path
root = Path.cwd()
for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
    part = path.relative_to(root).with_suffix("").parts
    if part[0] in ("tests", ".venv", "runs") or path.name == "__init__.py":
        continue
    if part[0] == "variants":
        runpy.run_path(str(path), run_name="not_main")
    else:
        importlib.import_module(".".join(part))
import fcntl_free_check
"""


def as_on_windows(tmp_path: Path) -> dict:
    """The environment of a Python that has what Windows has."""
    folder = tmp_path / "as_on_windows"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(AS_ON_WINDOWS)
    # a module to import last: it proves the sitecustomize took effect in this process
    (folder / "fcntl_free_check.py").write_text(
        "import multiprocessing, os\n"
        "assert not hasattr(os, 'fork') and multiprocessing.get_start_method() == 'spawn'\n"
        "try:\n    import fcntl\nexcept ImportError:\n    pass\nelse:\n    raise AssertionError\n"
    )
    paths = [str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def python(env: dict, *args, cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def test_as_on_windows_everything_imports_trains_resumes_draws_and_sweeps(tmp_path):
    env = as_on_windows(tmp_path)
    done = python(env, "-c", IMPORT_AND_TRAIN)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "pair"
    train = [ROOT / "variants" / "wgan_gp.py", *TINY, "--seeds", "2", "--epochs", "3"]
    done = python(env, *train, "--out", run)
    assert done.returncode == 0 and "done in" in done.stdout, done.stderr
    done = python(env, ROOT / "variants" / "wgan_gp.py", "--resume", run, "--epochs", "4")
    assert done.returncode == 0 and f"resuming {run} from epoch 3 of 4" in done.stdout
    for member in ("seed0", "seed1"):
        epochs = [line.split(",")[0] for line in (run / member / "metrics.csv").open()][1:]
        assert epochs == ["0", "1", "2", "3", "4"]
        assert len(list((run / member / "frames").glob("epoch_*.png"))) == 5
    done = python(env, ROOT / "plots" / "make_gifs.py", cwd=tmp_path)  # every run in runs/
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "runs" / "index.html").read_text()
    assert "pair" in page and (tmp_path / "runs" / "pair" / "seed0.gif").exists()
    sweep = [ROOT / "experiments" / "sweep.py", "gan", "--seeds", "1", "--grid", "lr=0.0001"]
    sweep += ["--study", "w", "--", "--data", "ring8", *TINY, "--epochs", "2"]
    done = python(env, *sweep, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 completed, 0 pruned, 0 failed" in done.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="inductor finds MSVC's cl.exe on its own")
def test_without_a_compiler_a_run_trains_uncompiled_to_the_numbers_of_no_compile(tmp_path):
    """CXX and CC pointing nowhere and an empty inductor cache (a cached step needs no
    compiler): one line says what failed, that the run goes on uncompiled and how to compile;
    the run's numbers are those of --no-compile, and its summary says why."""
    env = {
        **os.environ,
        "CXX": str(tmp_path / "nowhere" / "g++"),
        "CC": str(tmp_path / "nowhere" / "gcc"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "empty_cache"),
    }
    flags = [*TINY[:-1], "--seeds", "2", "--epochs", "3"]  # compiled
    done = python(env, ROOT / "variants" / "wgan.py", *flags, "--out", tmp_path / "nocxx")
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "compiling the step failed" in line]
    assert line.startswith("warning: compiling the step failed (InductorError: ")
    assert "training uncompiled" in line and line.endswith(f"to compile: {compiler_fix('cpu')}")
    summary = json.loads((tmp_path / "nocxx" / "summary.json").read_text())
    assert summary["compiled"] is False
    assert summary["uncompiled_because"].startswith("compiling failed: InductorError")
    eager = [*TINY, "--seeds", "2", "--epochs", "3", "--out", tmp_path / "eager"]
    assert python(os.environ, ROOT / "variants" / "wgan.py", *eager).returncode == 0
    for member in ("seed0", "seed1"):
        runs = [tmp_path / run / member for run in ("nocxx", "eager")]
        assert untimed(runs[0] / "metrics.csv") == untimed(runs[1] / "metrics.csv")
        for name in ("generator.pt", "generator_raw.pt", "critic.pt"):
            assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name


def untimed(path: Path) -> list[list[str]]:
    rows = [line.rstrip("\n").split(",") for line in path.open()]
    keep = [i for i, name in enumerate(rows[0]) if name != "seconds"]
    return [[row[i] for i in keep] for row in rows]
