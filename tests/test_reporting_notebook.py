"""notebooks/explore_results.ipynb runs top to bottom against a temporary results tree (never stale)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_reporting_fixtures import build_results

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_results.ipynb"


def test_notebook_executes_on_a_results_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    build_results(tmp_path / "results", tables=("table2b", "unet_table1"), scale="mini")
    monkeypatch.setenv("SEGBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SEGBENCH_SCALE", "mini")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    printed = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "2 tables at scale 'mini'" in printed
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the paper-vs-reproduced plot was not drawn"
