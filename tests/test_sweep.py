"""segbench sweep: overrides, the levelling-off criterion, and one recorded point at smoke scale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segbench.bench.sweep import apply_overrides, read_records, sweep_run, write_summary
from segbench.errors import InputError
from segbench.registry import resolve_run
from segbench.trainlog import loss_convergence


@pytest.fixture(scope="module")
def smoke_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segbench.data import prepare

    root = tmp_path_factory.mktemp("data")
    prepare("shapes_smoke", root)
    return root


def test_overrides_set_dotted_keys_as_yaml_values() -> None:
    cfg = resolve_run("r50_fpn", "smoke", 0)
    out = apply_overrides(cfg, ["schedule.iterations=7", "model.rpn_anchor_sizes=[4, 8, 16, 32, 64]"])
    assert out["schedule"]["iterations"] == 7 and out["model"]["rpn_anchor_sizes"] == [4, 8, 16, 32, 64]
    assert cfg["schedule"]["iterations"] != 7  # the resolved config is not modified
    with pytest.raises(InputError, match="SECTION.KEY=VALUE"):
        apply_overrides(cfg, ["iterations=7"])


def test_loss_change_compares_the_last_tenth_with_the_one_before() -> None:
    # the sweep records the tables' converged rule (segbench.trainlog)
    assert loss_convergence([1.0] * 80 + [2.0] * 10 + [1.0] * 10)["relative_change"] == pytest.approx(-0.5)
    assert loss_convergence([1.0] * 100)["relative_change"] == 0.0
    assert loss_convergence([1.0] * 5)["relative_change"] is None  # too short for a 10% window


def test_a_sweep_point_is_recorded(tmp_path: Path, smoke_data_root: Path) -> None:
    out = tmp_path / "smoke" / "sweep.jsonl"
    record = sweep_run(
        "r50_fpn",
        "smoke",
        0,
        ["schedule.iterations=3"],
        "three",
        smoke_data_root,
        tmp_path,
        out,
        tmp_path / "w",
    )
    assert record["iterations"] == 3 and "segm_AP" in record and "bbox_AP" in record
    assert read_records(out) == [json.loads(json.dumps(record))]
    summary = write_summary(out).read_text()
    assert "| 1 | three | r50_fpn | 0 | schedule.iterations=3 | 3 |" in summary
    assert not (tmp_path / "w" / "three").exists()  # the scratch training is removed
