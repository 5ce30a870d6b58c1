"""Every notebook in notebooks/ runs headlessly from top to bottom and draws its figures."""
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook():
    assert NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_draws(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors
    said = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "IProgress not found" not in said
    tables = " ".join(o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {}))
    assert not re.search(r">\s*(nan|NaN|None)\s*<", tables)  # a cell with no value says "—"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3                          # rounds, lengths, directions
    assert any("text/html" in o.get("data", {}) for o in outputs)  # the tables
