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


def test_a_sweep_over_synthetic_params_trains_on_data_generated_with_them(
    tmp_path: Path, smoke_data_root: Path
) -> None:
    """``--set dataset.params.num_train=N`` must change the data trained on (and say so in the record),
    without regenerating the scale's own dataset under the runs trained on it."""
    from segbench.data import read_manifest

    scale_manifest = read_manifest(smoke_data_root / "shapes_smoke")
    record = sweep_run(
        "r50_fpn",
        "smoke",
        0,
        ["schedule.iterations=2", "dataset.params.num_train=3"],
        "three_images",
        smoke_data_root,
        tmp_path,
        tmp_path / "smoke" / "sweep.jsonl",
        tmp_path / "w",
    )
    assert read_manifest(smoke_data_root / "shapes_smoke") == scale_manifest  # untouched
    swept = sorted((smoke_data_root / ".sweeps").glob("*/shapes_smoke"))
    assert len(swept) == 1 and read_manifest(swept[0])["params"]["num_train"] == 3
    train_images = [name for name in read_manifest(swept[0])["files"] if name.startswith("images/train/")]
    assert len(train_images) == 3
    assert record["dataset"]["sha256"] == read_manifest(swept[0])["dataset_sha256"]
    assert record["dataset"]["files"] == len(scale_manifest["files"]) - 8 + 3  # 8 train images at smoke


def test_a_downloaded_dataset_s_params_cannot_be_swept() -> None:
    from segbench.bench.sweep import sweep_data_root

    cfg = resolve_run("r50_fpn", "paper", 0)
    with pytest.raises(InputError, match="only a synthetic dataset"):
        sweep_data_root(apply_overrides(cfg, ["dataset.layout={}"]), Path("/nonexistent"))
    assert sweep_data_root(cfg, Path("/d")) == Path("/d")
