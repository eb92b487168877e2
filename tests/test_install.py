"""The install is split as the README says: requirements.txt is all that training and its
pictures need, the tests' and the sweeps' packages are apart, and a command that needs a
package the training install leaves out says so in one line.

"Left out" is a folder on PYTHONPATH holding a sitecustomize.py that makes every Python started
under it (the recorder too) fail to import the test, development and sweep packages, as they
fail where only requirements.txt is installed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from tests import ROOT

APART = (
    *("pytest", "_pytest", "selenium"),  # the tests'
    *("optuna", "psycopg", "psutil", "sqlalchemy"),  # the sweeps'
    *("jax", "opt_einsum"),  # the JAX peer's (torch imports opt_einsum where it is installed)
)
TINY = "--epochs 2 --train-size 640 --test-size 200 --frame-every 1 --no-compile".split()
# Print, at its end, the distributions whose modules the script loaded
LOADED = """
import atexit, runpy, sys
from importlib import metadata
def loaded():
    owners = metadata.packages_distributions()
    modules = [m for m, module in list(sys.modules.items()) if module is not None]
    names = {d for m in modules for d in owners.get(m.split(".")[0], [])}
    print("loaded:", " ".join(sorted(names)))
atexit.register(loaded)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def requirement_names(path: Path) -> set[str]:
    """The distributions a requirements file names, with those of the files it includes."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            names |= requirement_names(path.parent / line[3:].strip())
        elif line and not line.startswith("-"):
            names.add(normal(re.split(r"[\[=<>~! ]", line)[0]))
    return names


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: set[str]) -> set[str]:
    """The distributions and everything they require, as installed here."""
    found = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            required = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [normal(re.split(r"[\[=<>~!; (]", r)[0]) for r in required if "extra ==" not in r]
    return found


def without_the_extras(tmp_path: Path) -> dict:
    folder = tmp_path / "training_install"
    folder.mkdir()
    lines = [f"sys.modules[{name!r}] = None" for name in APART]  # importing it fails
    (folder / "sitecustomize.py").write_text("import sys\n" + "\n".join(lines) + "\n")
    paths = [str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def python(env: dict, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_packages_apart_are_not_in_the_training_install():
    training = requirement_names(ROOT / "requirements.txt")
    apart = requirement_names(ROOT / "requirements-dev.txt") - training
    assert {"pytest", "selenium", "ruff", "optuna", "psycopg", "psutil"} <= apart
    assert training & {"pytest", "selenium", "ruff", "optuna", "psycopg", "psutil"} == set()
    assert requirement_names(ROOT / "requirements-sweeps.txt") <= apart


def test_training_and_its_pictures_need_only_requirements_txt(tmp_path):
    env = without_the_extras(tmp_path)
    run = python(
        env, "-c", LOADED, ROOT / "variants" / "gan.py", *TINY, "--out", "runs/gan", cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr
    pictures = python(env, "-c", LOADED, ROOT / "plots" / "make_gifs.py", cwd=tmp_path)
    assert pictures.returncode == 0, pictures.stdout + pictures.stderr
    assert (tmp_path / "runs" / "gan.gif").exists() and (tmp_path / "runs" / "index.html").exists()
    allowed = closure(requirement_names(ROOT / "requirements.txt")) | {"lab5"}
    for done in (run, pictures):
        loaded = set(map(normal, done.stdout.split("loaded:")[1].split()))
        assert loaded - allowed == set(), "loaded but not required"


def test_a_sweep_without_its_packages_says_how_to_install_them(tmp_path):
    done = python(
        without_the_extras(tmp_path), ROOT / "experiments" / "sweep.py", "wgan_gp", cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: this command needs optuna, which sweeps and the report's experiments use beside "
        "training: pip install -r requirements-sweeps.txt"
    ]


def test_the_jax_peer_without_jax_imports_and_says_how_to_install_it(tmp_path):
    env = without_the_extras(tmp_path)
    imported = python(env, "-c", "import bench.jax_peer", cwd=ROOT)
    assert imported.returncode == 0 and imported.stderr == ""
    done = python(env, ROOT / "bench" / "jax_peer.py", "wgan_gp", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "error: the JAX peer needs jax: pip install -r requirements-bench.txt\n"
