"""ISBI 2012 submissions at the smoke scale: the organisers' format and polarity, the format validated on
held-out training slices against the evaluation, and the organisers' scores recorded beside the run.

One U-Net is trained for the module (the smoke config shrunk to depth 2 and 60-pixel tiles, 15 iterations:
enough to tell membrane from cell on the synthetic stack, about 15 s) and evaluated; the CLI resolves
``unet_isbi`` at ``smoke`` to that config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from segbench.cli import main
from segbench.data.synthetic.em import draw_stack
from segbench.engine.runner import evaluate_run, train_run
from segbench.io import sha256_file
from segbench.isbi_submission import (
    HELD_OUT_SUBMISSION,
    OFFICIAL,
    SUBMISSION,
    SUBMISSION_RECORD,
    pixel_sha256,
)
from segbench.metrics.isbi import isbi_metrics
from segbench.provenance import config_hash
from segbench.registry import resolve_run


def tiny_config() -> dict[str, Any]:
    cfg = resolve_run("unet_isbi", "smoke", 0)
    cfg["model"].update(depth=2, base_channels=8)
    cfg["input"]["tile"] = 60
    cfg["schedule"].update(iterations=15, batch_size=1, checkpoint_every=1000)
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("isbi")
    cfg = tiny_config()
    run_dir = root / "results" / "smoke" / "runs" / cfg["run_id"]
    train_run(cfg, run_dir, root / "data")
    metrics = evaluate_run(cfg, run_dir, root / "data")["metrics"]["isbi"]
    return {"cfg": cfg, "run_dir": run_dir, "root": root, "metrics": metrics}


@pytest.fixture
def cli(trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    """``segbench isbi ...`` on the module's run (``unet_isbi`` at ``smoke`` resolves to its config)."""
    monkeypatch.setattr("segbench.cli._common.resolve_run", lambda run, scale, seed: tiny_config())
    root = trained["root"]
    common = ["--run", "unet_isbi", "--scale", "smoke", "--results", str(root / "results")]
    common += ["--data-root", str(root / "data")]
    return lambda action, *extra: main(["isbi", action, *common, *extra])


def test_submission_is_a_float32_stack_in_0_1_with_cells_at_1(trained, cli, capsys) -> None:
    assert cli("submission") == 0
    run_dir, cfg = trained["run_dir"], trained["cfg"]
    stack = tifffile.imread(run_dir / SUBMISSION)
    volume, labels = draw_stack(cfg["dataset"]["params"], 0, "test")  # the stand-in and its (unused) labels
    assert stack.dtype == np.float32 and stack.shape == volume.shape == (4, 96, 96)
    assert 0.0 <= stack.min() and stack.max() <= 1.0 and np.isfinite(stack).all()
    # polarity: 1 = cell, 0 = membrane (the organisers' convention, the labels' 255 -> 1)
    assert stack[labels == 255].mean() > stack[labels == 0].mean() + 0.1
    assert isbi_metrics(stack, labels)["pixel_error"] < isbi_metrics(1.0 - stack, labels)["pixel_error"]
    record = json.loads((run_dir / SUBMISSION_RECORD).read_text())
    assert record["config_hash"] == config_hash(cfg) and record["run_id"] == "unet_isbi-seed0"
    assert record["input"]["pixel_sha256"] == pixel_sha256(volume)
    assert record["output"]["sha256"] == sha256_file(run_dir / SUBMISSION)
    assert record["output"]["pixel_sha256"] == pixel_sha256(stack)
    assert record["weights_sha256"] == sha256_file(run_dir / "model_final.pt")
    assert "wrote isbi_submission.tif (4 x 96 x 96 float32" in capsys.readouterr().out


def test_scoring_the_held_out_submission_file_reproduces_the_evaluation(trained, cli, capsys) -> None:
    assert cli("submission", "--held-out") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["match"] is True and result["held_out"] == ["slice03"]
    # independently: the file on disk, scored against the held-out labels, gives the recorded errors
    stack = tifffile.imread(trained["run_dir"] / HELD_OUT_SUBMISSION)
    labels = tifffile.imread(trained["root"] / "data" / "em_smoke" / "train-labels.tif")[3:4]
    scored = isbi_metrics(stack, labels)
    for key in ("warping_error", "rand_error", "pixel_error"):
        assert scored[key] == trained["metrics"][key] == result["submission_errors"][key]
    assert 0.0 < result["thinned"]["v_rand"] <= 1.0 and 0.0 < result["thinned"]["v_info"] <= 1.0
    for key in ("v_rand", "v_info", "best_threshold"):  # the file's scores are those the evaluation recorded
        assert result["thinned"][key] == trained["metrics"]["thinned"][key]


def test_a_submission_that_scores_differently_fails_in_one_line(trained, cli, capsys) -> None:
    path = trained["run_dir"] / "metrics.json"
    original = path.read_text()
    record = json.loads(original)
    record["metrics"]["isbi"]["rand_error"] += 0.01
    path.write_text(json.dumps(record))
    try:
        assert cli("submission", "--held-out") == 1
    finally:
        path.write_text(original)
    err = capsys.readouterr().err.strip()
    assert err.startswith("segbench: error: isbi_submission_heldout.tif: scoring") and "\n" not in err


def test_record_scores_stores_the_organisers_numbers_beside_the_run(trained, cli, capsys) -> None:
    args = [
        "--rand",
        "0.0382",
        "--warping",
        "0.000353",
        "--pixel",
        "0.0611",
        "--vrand",
        "0.97",
        "--date",
        "2026-01-02",
    ]
    assert cli("record-scores", *args) == 0
    record = json.loads((trained["run_dir"] / OFFICIAL).read_text())
    assert record["reported_by"].startswith("the ISBI 2012 organisers")
    assert record["metrics"] == {
        "rand_error": 0.0382,
        "warping_error": 0.000353,
        "pixel_error": 0.0611,
        "v_rand": 0.97,
    }
    assert record["date"] == "2026-01-02" and record["submission_sha256"]
    capsys.readouterr()
    assert cli("record-scores", "--rand", "38.2") == 2
    err = capsys.readouterr().err.strip()
    assert "rand_error = 38.2 is outside [0, 1]" in err and "\n" not in err


def test_the_real_test_stack_is_read_where_present(shared_data: Path) -> None:
    from segbench.isbi_submission import load_test_stack

    cfg = resolve_run("unet_isbi", "real_cpu", 0)
    volume, source = load_test_stack(cfg, shared_data)
    assert volume.shape == (30, 512, 512) and volume.dtype == np.uint8
    # the pixel hash in ../shared/data/isbi2012/README.md
    assert source["pixel_sha256"] == "1b58fa7ec1d0ff9d39a855622db3ff66a97863036339b0d04be51b2f5a99b0e9"


def test_the_table_page_shows_the_organisers_scores_beside_the_held_out_ones(tmp_path: Path) -> None:
    import shutil

    from segbench.isbi_submission import record_scores
    from segbench.paths import REPO_ROOT
    from segbench.reporting.html import build_pages

    shutil.copytree(REPO_ROOT / "results" / "real_cpu", tmp_path / "real_cpu")  # committed records only
    run_dir = tmp_path / "real_cpu" / "runs" / "unet_isbi-seed0"
    cfg = resolve_run("unet_isbi", "real_cpu", 0)
    record_scores(cfg, run_dir, {"rand_error": 0.0382, "v_rand": 0.97}, date="2026-01-02")
    build_pages("real_cpu", tmp_path, tmp_path / "reports")
    html = (tmp_path / "reports" / "real_cpu" / "unet_table1.html").read_text()
    section = html.split('id="official-test-set"')[1].split("</section>")[0]
    held_out = json.loads((run_dir / "metrics.json").read_text())["metrics"]["isbi"]["rand_error"]
    assert f"0.0382 · {held_out:.3g}" in section and "0.97 · –" in section
    assert "unet_isbi-seed0" in section and "unet_isbi-seed1" not in section
    assert "2026-01-02" in section
    # a run evaluated since: its held-out V_rand comes from metrics.json's isbi.thinned
    record = json.loads((run_dir / "metrics.json").read_text())
    record["metrics"]["isbi"]["thinned"] = {"v_rand": 0.9512, "v_info": 0.9634}
    (run_dir / "metrics.json").write_text(json.dumps(record))
    build_pages("real_cpu", tmp_path, tmp_path / "reports")
    html = (tmp_path / "reports" / "real_cpu" / "unet_table1.html").read_text()
    assert "0.97 · 0.951" in html.split('id="official-test-set"')[1].split("</section>")[0]


def test_a_committed_run_without_weights_says_how_to_regenerate_them(capsys) -> None:
    assert main(["isbi", "submission", "--run", "unet_isbi", "--scale", "real_cpu", "--seed", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "model_final.pt: the run's records are here but not its weights" in err
    assert "docs/isbi_submission.md" in err and "\n" not in err
