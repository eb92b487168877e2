"""The shape the code keeps: lab5.py reads top to bottom and stays compact, functions stay
short, and ruff (pinned in requirements.txt, configured in pyproject.toml) finds nothing."""

import ast
import shutil
import subprocess

import pytest

import lab5

CORE = lab5.ROOT / "lab5.py"
LIBRARY = [CORE, *sorted((lab5.ROOT / "plots").glob("*.py")), lab5.ROOT / "data" / "points.py"]


def top_level_names(tree: ast.Module) -> dict[str, int]:
    """Each name the module defines at its top level, and the index of the statement."""
    names = {}
    for index, node in enumerate(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = index
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names.setdefault(name.id, index)
    return names


def local_names(node: ast.AST) -> set[str]:
    """The names a top-level function binds itself (arguments, assignments), which shadow the
    module's."""
    arguments = {a.arg for n in ast.walk(node) if isinstance(n, ast.arguments)
                 for a in [*n.posonlyargs, *n.args, *n.kwonlyargs, n.vararg, n.kwarg] if a}
    stored = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Store)}
    return arguments | stored if isinstance(node, ast.FunctionDef) else set()


def test_lab5_reads_top_to_bottom():
    """No top-level statement uses a name that a later one defines."""
    tree = ast.parse(CORE.read_text())
    defined = top_level_names(tree)
    late = [f"line {name.lineno}: {name.id} (defined below)"
            for index, node in enumerate(tree.body) for name in ast.walk(node)
            if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Load)
            and defined.get(name.id, -1) > index and name.id not in local_names(node)]
    assert late == []


def test_lab5_is_compact():
    """The loop redesign's budget, kept with the moving average added: harness code goes to
    plots/ and data/."""
    assert len(CORE.read_text().splitlines()) <= 750


@pytest.mark.parametrize("path", LIBRARY, ids=[p.name for p in LIBRARY])
def test_no_function_is_over_40_lines(path):
    tree = ast.parse(path.read_text())
    long = [f"{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > 40]
    assert long == []


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(lab5.ROOT / ".venv" / "bin"))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -r requirements.txt)")
    done = subprocess.run([ruff, "check", "--no-cache", str(lab5.ROOT)], capture_output=True,
                          text=True, cwd=lab5.ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_plots_and_data_never_import_the_training_code():
    """Imports run one way: plots/ and data/ work from arrays and files, never from lab5."""
    for path in LIBRARY[1:]:
        imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in (node.names if isinstance(node, ast.Import)
                                  else [ast.alias(node.module or "")])}
        assert "lab5" not in imported, path
