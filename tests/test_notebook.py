"""The quickstart notebook runs top to bottom on the real model, using only the public API."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_quickstart_notebook_executes(tmp_path: Path) -> None:

    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    shutil.copytree(ROOT / "eval" / "gold", tmp_path / "eval" / "gold")
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "chunks from 2 sources" in outputs
    assert "[1]" in outputs
    assert (tmp_path / "indexes" / "quality_vs_k.png").stat().st_size > 1000
