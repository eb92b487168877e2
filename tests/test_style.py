"""The shape the code keeps: lab5.py reads top to bottom, opens on data and models and stays
within its budget; functions stay short; ruff finds nothing and decides the layout; nothing is
packed to meet a line count; imports run one way."""

import ast
import shutil
import subprocess
import sys

import pytest

from tests import ROOT

CORE = ROOT / "lab5.py"
FOLDERS = ("data", "recording", "plots", "variants", "experiments", "bench")
LIBRARY = [CORE, ROOT / "config.py", ROOT / "errors.py"]
LIBRARY += [path for folder in FOLDERS for path in sorted((ROOT / folder).glob("*.py"))]
EVERY_FILE = LIBRARY + sorted((ROOT / "tests").glob("*.py"))
# What each part of lab5 may import of the others: the scripts import lab5, which imports the
# rest; recording reads and writes config.json through config, plots reads run folders through
# recording's files; nothing but the scripts imports lab5, and recording is handed what it draws.
MAY_IMPORT = {
    "errors": set(),
    "data": {"errors", "data"},
    "config": {"errors", "data"},
    "recording": {"errors", "data", "config", "recording"},
    "plots": {"errors", "recording", "plots"},
}
OURS = {"lab5", "config", "errors", "data", "recording", "plots", "experiments", "bench", "tests"}


def parsed(path):
    return ast.parse(path.read_text(), filename=str(path))


def names(paths) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def top_level_names(tree: ast.Module) -> dict[str, int]:
    """Each name the module defines at its top level, and the index of the statement."""
    defined = {}
    for index, node in enumerate(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined[node.name] = index
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        defined.setdefault(name.id, index)
    return defined


def local_names(node: ast.AST) -> set[str]:
    """The names a top-level function binds itself (arguments, assignments), which shadow the
    module's."""
    if not isinstance(node, ast.FunctionDef):
        return set()
    arguments = {
        a.arg
        for n in ast.walk(node)
        if isinstance(n, ast.arguments)
        for a in [*n.posonlyargs, *n.args, *n.kwonlyargs, n.vararg, n.kwarg]
        if a
    }
    stored = {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    return arguments | stored


def test_lab5_reads_top_to_bottom():
    """No top-level statement uses a name that a later one defines."""
    tree = parsed(CORE)
    defined = top_level_names(tree)
    late = [
        f"line {name.lineno}: {name.id} (defined below)"
        for index, node in enumerate(tree.body)
        for name in ast.walk(node)
        if isinstance(name, ast.Name)
        and isinstance(name.ctx, ast.Load)
        and defined.get(name.id, -1) > index
        and name.id not in local_names(node)
    ]
    assert late == []


def test_lab5_opens_on_data_and_models_and_keeps_its_budget():
    """After the imports, the first thing lab5.py defines is the data's; the flags live in
    config.py and what a run writes in recording/. The budget is on formatted lines."""
    tree = parsed(CORE)
    first = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)))
    assert first.name == "make_rng"
    assert len(CORE.read_text().splitlines()) <= 600


@pytest.mark.parametrize("path", LIBRARY, ids=names(LIBRARY))
def test_no_function_is_over_40_lines(path):
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(parsed(path))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > 40
    ]
    assert long == []


def is_sequence(node: ast.AST) -> bool:
    """A list, tuple or string written out."""
    literal = isinstance(node, (ast.List, ast.Tuple, ast.JoinedStr))
    return literal or isinstance(node, ast.Constant) and isinstance(node.value, str)


def is_count(node: ast.AST) -> bool:
    """What a sequence may be multiplied by: a number, a call (len(...)) or arithmetic."""
    number = isinstance(node, ast.Constant) and type(node.value) is int
    bool_call = isinstance(node, ast.Call) and getattr(node.func, "id", "") == "bool"
    arithmetic = isinstance(node, ast.BinOp) or isinstance(node, ast.Call) and not bool_call
    return number or arithmetic


def packed(tree: ast.AST) -> list[str]:
    """Code packed to save lines: a tuple of values assigned to a tuple of names (`a, b = x,
    y`), a sequence or string multiplied by a condition (`[x] * (n > 0)`, `"s" * ok`: anything
    but a number, a call or arithmetic), a lambda named by assignment."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
            if any(isinstance(target, ast.Tuple) for target in node.targets):
                found.append(f"line {node.lineno}: tuple assignment")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            for sequence, times in ((node.left, node.right), (node.right, node.left)):
                if is_sequence(sequence) and not is_count(times):
                    found.append(f"line {node.lineno}: multiplied by a condition")
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            found.append(f"line {node.lineno}: a lambda assigned to a name")
    return found


@pytest.mark.parametrize("path", EVERY_FILE, ids=names(EVERY_FILE))
def test_nothing_is_packed(path):
    assert packed(parsed(path)) == []
    assert "noqa: E" + "731" not in path.read_text()  # spelled apart: this file passes too


def test_the_packing_check_finds_packing():
    code = "a, b = 1, 2\nc = [1] * (a > 0)\nd = 's' * bool(b)\nf = lambda: 0\ng, h = divmod(7, 2)\n"
    code += "e = [(1, 2)] * ok\nk = '-|' * len(x) + 'x' * 3 + str([0] * (n - 1))\n"
    assert len(packed(ast.parse(code))) == 5


def ruff(*args: str) -> subprocess.CompletedProcess:
    found = shutil.which("ruff") or shutil.which("ruff", path=str(ROOT / ".venv" / "bin"))
    if found is None:
        pytest.skip("ruff is not installed (pip install -r requirements.txt)")
    return subprocess.run([found, *args], capture_output=True, text=True, cwd=ROOT)


def test_ruff_finds_nothing():
    done = ruff("check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_decides_the_layout():
    done = ruff("format", "--check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def imported(path) -> set[str]:
    """The top-level names of the modules a file imports (its own package's included)."""
    found = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("part", MAY_IMPORT)
def test_imports_run_one_way(part):
    """data/, config.py, recording/ and plots/ import only what lies below them, and never the
    training code."""
    paths = sorted(ROOT.glob(f"{part}/*.py")) or [ROOT / f"{part}.py"]
    assert paths[0].exists()
    for path in paths:
        assert imported(path) & OURS <= MAY_IMPORT[part], path


def test_the_pictures_start_without_torch():
    """plots/ reads run folders without loading torch (2 s of a 3 s make_gifs.py over ten runs
    with nothing new to make)."""
    code = "import sys, plots.make_gifs; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "False", done.stderr
