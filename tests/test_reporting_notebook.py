"""notebooks/explore_results.ipynb runs top to bottom against a temporary results tree (never stale).

nbclient and ipykernel are in the dev extras (pip install -e ".[dev]", what `make install` does), so this
test runs, never skips, wherever the suite is meant to run."""

from __future__ import annotations

import re
from pathlib import Path

import nbclient
import nbformat
import pytest
from test_reporting_fixtures import build_results

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_results.ipynb"


def test_notebook_executes_on_a_results_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_the_dev_install_has_the_notebook_pieces_and_the_docs_link_the_notebook() -> None:
    root = NOTEBOOK.parents[1]
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    dev = re.search(r"^dev = \[(.*?)^\]", pyproject, re.MULTILINE | re.DOTALL)
    assert dev, "pyproject.toml: no dev extras"
    names = set(re.findall(r'^\s*"([A-Za-z0-9_.-]+)', dev.group(1), re.MULTILINE))
    assert {"nbclient", "ipykernel"} <= names
    from jupyter_client.kernelspec import KernelSpecManager

    assert "python3" in KernelSpecManager().find_kernel_specs()  # ipykernel's kernel, as the test runs it
    # the README's section on the notebook moved to docs/report.md
    report_page = (root / "docs" / "report.md").read_text(encoding="utf-8")
    assert "(../notebooks/explore_results.ipynb)" in report_page
