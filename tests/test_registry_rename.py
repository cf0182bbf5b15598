"""Every name is the registry's: rename runs and a table in a copy of experiments.yaml and the code paths
that once hard-coded them (README digest, figure bindings, preferred runs, head figure, benchmark
classes, dataset mapping) follow the copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from segbench.registry import (
    dataset_for,
    figure_runs,
    figure_tables,
    headline_column,
    load_registry,
    registry_path,
    runs_of_family,
)

RENAMES = {
    "r50_c4": "c4_fifty",
    "r50_fpn": "fpn_fifty",
    "r50_fpn_person_kp": "kp_only_fifty",
    "unet_isbi": "em_net",
    "unet_phc": "phc_net",
    "table2c": "roi_layers",
}


@pytest.fixture
def renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    text = registry_path().read_text(encoding="utf-8")
    for old, new in RENAMES.items():
        text = re.sub(rf"\b{old}\b", new, text)
    path = tmp_path / "experiments.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("SEGBENCH_REGISTRY", str(path))
    return load_registry()


def test_the_copy_has_none_of_the_old_names(renamed: dict) -> None:
    assert not set(RENAMES) & (set(renamed["runs"]) | set(renamed["tables"]))
    assert dataset_for("c4_fifty", "mini", renamed) == "shapes_mini"
    assert dataset_for("em_net", "smoke", renamed) == "em_smoke"
    assert {"em_net", "phc_net"} <= set(runs_of_family("unet", renamed))


def test_summary_headline_follows_a_renamed_table(renamed: dict) -> None:
    from segbench.tables.summary import summary_markdown

    assert headline_column("roi_layers", renamed) == "AP75"
    cell = {"mean": 0.34, "std": 0.29, "n": 3, "paper": 26.4}
    table = {
        "table": "roi_layers",
        "paper": "maskrcnn",
        "columns": ["AP", "AP50", "AP75"],
        "rows": [{"label": "RoIPool (max)", "values": {"AP75": cell}}],
        "directions": [],
    }
    text = summary_markdown("mini", Path("unused"), [table])
    assert (
        "| [roi_layers](results/mini/tables/roi_layers.md) AP75 | RoIPool (max) | 0.3 ± 0.3 (3) | 26.4 |"
        in text
    )


def test_figure_bindings_follow_renamed_tables_and_runs(renamed: dict) -> None:
    from segbench.reporting.figures import build_figures
    from segbench.reporting.figures.heads import architectures
    from segbench.reporting.figures.predictions import preferred_runs

    figures = build_figures(renamed)
    assert (
        figures["maskrcnn_fig3"].tables
        == ("roi_layers", "table2d")
        == figure_tables("maskrcnn_fig3", renamed)
    )
    assert "bars_roi_layers" in figures and "bars_table2c" not in figures
    assert [run for run, _ in architectures()] == ["c4_fifty", "fpn_fifty"]
    assert [run for run, _ in figure_runs("maskrcnn_fig4", renamed)] == ["c4_fifty", "fpn_fifty"]
    assert "fpn_fifty" in preferred_runs("maskrcnn_fig2_5")
    assert preferred_runs("maskrcnn_fig7")[-1] == "kp_only_fifty"


def test_preferred_run_lookup_ranks_renamed_runs(renamed: dict, tmp_path: Path) -> None:
    from segbench.reporting.figures.base import FigureContext
    from segbench.reporting.figures.predictions import find_predictions, preferred_runs

    runs = tmp_path / "results" / "mini" / "runs"
    for run_id in ("c4_fifty-seed0", "fpn_fifty-seed0", "aaa_unlisted-seed0"):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "predictions_val.json").write_text(json.dumps({"segm": [{"image_id": 1}]}))
    ctx = FigureContext("mini", tmp_path / "results", tmp_path / "out")
    path, _ = find_predictions(ctx, "segm", preferred_runs("maskrcnn_fig2_5"))
    assert path.parent.name == "fpn_fifty-seed0"  # fpn before c4 in the registry's order, unlisted last


def test_cell_figure_finds_renamed_unet_runs(renamed: dict, tmp_path: Path) -> None:
    from segbench.reporting.figures.base import FigureContext
    from segbench.reporting.figures.predictions import render_cells

    runs = tmp_path / "results" / "smoke" / "runs"
    rng = np.random.default_rng(0)
    (runs / "phc_net-seed0").mkdir(parents=True)
    np.savez(
        runs / "phc_net-seed0" / "predictions_val.npz",
        image=rng.random((8, 8)),
        prediction=rng.random((8, 8)) > 0.5,
        ground_truth=rng.random((8, 8)) > 0.5,
    )
    (runs / "threshold_phc-seed0").mkdir(
        parents=True
    )  # no U-Net: drawing it would fail on the missing arrays
    np.savez(runs / "threshold_phc-seed0" / "predictions_val.npz", unrelated=np.zeros(1))
    files = render_cells(FigureContext("smoke", tmp_path / "results", tmp_path / "out"))
    assert files and all(f.startswith("unet_fig4") for f in files)


def test_benchmark_classes_come_from_the_dataset_registry(renamed: dict) -> None:
    from segbench.bench.maskrcnn import bench_config, run_names

    assert run_names(None) == ["fpn_fifty"]
    assert bench_config("kp_only_fifty", "smoke", (64, 64))["model"]["num_classes"] == 2
    assert bench_config("c4_fifty", "smoke", (64, 64))["model"]["num_classes"] == 81
