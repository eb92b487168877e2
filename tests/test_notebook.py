"""notebooks/lab5.ipynb, executed as CI executes it (nbclient, tiny sizes): every cell runs, the
penalty's gradient check passes inside it, the training redraws its picture, and git holds the
notebook without outputs."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests import ROOT

NOTEBOOK = ROOT / "notebooks" / "lab5.ipynb"


def test_the_notebook_is_kept_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_every_cell_runs_at_tiny_sizes_and_the_training_redraws(monkeypatch):
    monkeypatch.setenv("LAB5_NOTEBOOK_TINY", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute()
    except CellExecutionError as e:  # the failing cell's source and traceback
        pytest.fail(str(e).splitlines()[0])
    printed = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "largest relative difference, analytic against finite differences" in printed
    training = next(cell for cell in notebook.cells if "lab5.train([cfg]" in cell.source)
    assert any("image/png" in output.get("data", {}) for output in training.outputs)
    assert "wgan_gp: " in printed and "× the noise floor" in printed
