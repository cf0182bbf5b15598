"""The run zoo's readers: schedule and input size from a resolved config, s/iter from either log key,
eval-set wording, and "not recorded" where a run recorded nothing (never an estimate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segbench.reporting.zoo import (
    NOT_RECORDED,
    config_row,
    eval_set,
    iter_batch_text,
    run_record,
    schedule_of,
    schedule_text,
    seconds_per_iter,
    sparkline,
    table_runs_summary,
    validation_points,
    zoo_view,
)


def test_schedule_of_maskrcnn_unet_and_classical() -> None:
    mrcnn = {
        "schedule": {"iterations": 500, "images_per_batch": 4},
        "input": {"min_size": 128, "max_size": 128},
    }
    assert schedule_text(schedule_of(mrcnn)) == "500 iter, batch 4, 128"
    multi = {
        "schedule": {"iterations": 9, "images_per_batch": 2},
        "input": {"min_size": [96, 128], "max_size": 160},
    }
    assert schedule_text(schedule_of(multi)) == "9 iter, batch 2, 96–128 (max 160)"
    unet = {"schedule": {"iterations": 800, "batch_size": 1}, "input": {"tile": 316}}
    assert schedule_text(schedule_of(unet)) == "800 iter, batch 1, tile 316"
    assert schedule_text(schedule_of({})) == "no training schedule"


def test_seconds_per_iter_is_the_median_of_time_or_older_seconds() -> None:
    assert seconds_per_iter([{"iteration": i, "time": t} for i, t in enumerate([0.1, 0.5, 0.2])]) == 0.2
    assert seconds_per_iter([{"iteration": 1, "seconds": 0.3}, {"event": "schedule", "time": 9.0}]) == 0.3
    assert seconds_per_iter([{"iteration": 1, "loss": 1.0}]) is None


def test_eval_set_words() -> None:
    assert eval_set({"metrics": {"eval": {"images": 100, "split": "val"}}}) == "100 val images"
    assert eval_set({"metrics": {"isbi": {"slices": 4}}}) == "4 held-out ISBI slices"
    assert (
        eval_set({"metrics": {"ctc": {"held_out": ["a", "b"], "objects": 7}}})
        == "2 held-out frames, 7 objects"
    )
    assert eval_set({}) is None


def test_sparkline_escapes_its_title_and_needs_two_points() -> None:
    assert sparkline([(1, 1.0)], "x") is None
    svg = str(sparkline([(1, 2.0), (2, 1.0)], "<b>"))
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "<polyline" in svg


def test_run_record_reads_the_run_files_and_says_not_recorded(tmp_path: Path) -> None:
    run = tmp_path / "mini" / "runs" / "unet_isbi-seed1"
    run.mkdir(parents=True)
    config = {
        "run": "unet_isbi",
        "seed": 1,
        "family": "unet",
        "dataset": {"name": "em_mini"},
        "schedule": {"iterations": 800, "batch_size": 1},
        "input": {"tile": 316},
    }
    prov = {"git_commit": "feedbee", "device": "cpu (test)", "host": "box", "wall_time_s": 40.0}
    (run / "config.json").write_text(json.dumps({"config": config, "provenance": prov}))
    (run / "train_done.json").write_text(json.dumps({"provenance": prov}))
    (run / "train_log.jsonl").write_text(
        "".join(json.dumps({"iteration": i, "loss": 2.0 / i, "seconds": 0.25}) + "\n" for i in range(1, 6))
    )
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "metrics": {"isbi": {"rand_error": 0.5, "slices": 4}},
                "provenance": {"wall_time_s": 3.0},
                "train_wall_time_s": 40.0,
            }
        )
    )
    rec = run_record(run, tmp_path)
    assert rec["family"] == "unet" and rec["dataset"] == "em_mini" and rec["s_per_iter"] == "0.250"
    assert rec["train_time"] == "40.0 s" and rec["eval_time"] == "3.0 s"
    # as the tables (segbench.formatting): a fraction to 3 significant digits
    assert rec["metrics"]["Rand error"] == "0.5" and rec["metrics"]["mask AP"] == "–"
    assert rec["loss_svg"] is not None and rec["val_svg"] is None
    assert [link["href"] for link in rec["links"]] == [
        f"mini/runs/unet_isbi-seed1/{n}" for n in ("config.json", "train_log.jsonl", "metrics.json")
    ]
    summary = table_runs_summary(["unet_isbi-seed1"], tmp_path, "mini", tmp_path)
    assert summary["schedules"][0]["text"] == "800 iter, batch 1, tile 316" and summary["seeds"] == [1]
    assert summary["commits"] == ["feedbee"] and summary["machines"] == ["cpu (test) on box"]
    assert summary["eval_sets"] == ["4 held-out ISBI slices"]
    (run / "train_log.jsonl").unlink()
    assert run_record(run, tmp_path)["s_per_iter"] == NOT_RECORDED


def test_validation_points_read_the_eval_curve_mask_ap_first() -> None:
    curve = [
        {"iteration": 250, "bbox": {"AP": 0.1}, "segm": {"AP": 0.05}},
        {"iteration": 500, "bbox": {"AP": 0.2}, "segm": {"AP": 0.125}},
    ]
    assert validation_points(curve) == ("mask AP", [(250.0, 5.0), (500.0, 12.5)])
    boxes_only = [{k: v for k, v in p.items() if k != "segm"} for p in curve]
    assert validation_points(boxes_only) == ("box AP", [(250.0, 10.0), (500.0, 20.0)])
    assert validation_points(None) is None and validation_points({"iteration": 1}) is None
    assert validation_points([{"iteration": 1, "segm": {"AP": None}}]) is None


def test_a_run_with_an_eval_curve_gets_a_val_ap_sparkline(tmp_path: Path) -> None:
    run = tmp_path / "mini" / "runs" / "r50_c4-seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"run": "r50_c4", "seed": 0, "family": "maskrcnn"}))
    (run / "train_log.jsonl").write_text(
        "".join(json.dumps({"iteration": i, "loss": 2.0 / i}) + "\n" for i in range(1, 6))
    )
    assert run_record(run, tmp_path)["val_svg"] is None  # no eval_curve.json: nothing shown
    curve = [{"iteration": i, "segm": {"AP": 0.01 * i}} for i in (1, 3, 5)]
    (run / "eval_curve.json").write_text(json.dumps(curve))
    rec = run_record(run, tmp_path)
    assert "<polyline" in str(rec["val_svg"]) and "mask AP" in str(rec["val_svg"])
    assert rec["val_range"] == "mask AP 1.0 → 5.0"
    groups = zoo_view(tmp_path, "mini", tmp_path)
    assert groups[0]["has_curve"] is True


def test_a_run_with_coco_details_gets_per_class_ap_and_a_pr_curve(tmp_path: Path) -> None:
    run = tmp_path / "mini" / "runs" / "r50_c4-seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"run": "r50_c4", "seed": 0, "family": "maskrcnn"}))
    assert run_record(run, tmp_path)["per_class"] is None  # no coco_details.json: nothing shown
    segm = {
        "category_names": {"1": "circle", "2": "star"},
        "per_category_AP": {"1": 0.5, "2": 0.125},
        "recall": [0.0, 0.5, 1.0],
        "precision_iou50": [1.0, 0.5, 0.0],
        "ground_truth_per_category": {"1": 10, "2": 8},
        "detections_per_category": {"1": 9, "2": 20},
    }
    (run / "coco_details.json").write_text(json.dumps({"split": "val", "segm": segm, "bbox": {}}))
    rec = run_record(run, tmp_path)
    assert rec["per_class_label"] == "mask AP" and rec["per_class"] == "circle 50.0, star 12.5"
    assert rec["class_counts"] == "circle 9/10, star 20/8"
    assert "<polyline" in str(rec["pr_svg"]) and "IoU 0.50" in str(rec["pr_svg"])
    assert zoo_view(tmp_path, "mini", tmp_path)[0]["has_details"] is True


def write_run(root: Path, run: str, seed: int, ap: float | None, seconds: float, iters: int = 500) -> None:
    """A Mask R-CNN run instance with a schedule, a log of ``seconds`` per iteration and mask AP ``ap``."""
    d = root / "mini" / "runs" / f"{run}-seed{seed}"
    d.mkdir(parents=True)
    config = {
        "run": run,
        "seed": seed,
        "family": "maskrcnn",
        "dataset": {"name": "shapes_mini"},
        "schedule": {"iterations": iters, "images_per_batch": 8},
        "input": {"min_size": 176, "max_size": 176},
    }
    (d / "config.json").write_text(json.dumps({"config": config}))
    (d / "train_log.jsonl").write_text(json.dumps({"iteration": 1, "loss": 1.0, "time": seconds}) + "\n")
    segm = {"AP": ap} if ap is not None else {}
    (d / "metrics.json").write_text(json.dumps({"metrics": {"segm": segm, "bbox": {"AP": 0.25}}}))


def test_zoo_groups_seeds_into_one_configuration_with_mean_std_as_the_tables(tmp_path: Path) -> None:
    from segbench.formatting import POINTS
    from segbench.tables.aggregate import seed_summary

    for seed, ap in ((0, 0.20), (1, 0.25), (2, 0.30)):
        write_run(tmp_path, "r50_c4", seed, ap, 0.1 * (seed + 1))
    write_run(tmp_path, "r50_fpn", 10, 0.5, 0.2, iters=1000)
    write_run(tmp_path, "r50_fpn", 2, None, 0.4, iters=1000)  # a seed without mask AP
    (group,) = zoo_view(tmp_path, "mini", tmp_path)
    assert len(group["rows"]) == 5 and [c["run"] for c in group["configs"]] == ["r50_c4", "r50_fpn"]
    c4, fpn = group["configs"]
    assert c4["n"] == 3 and c4["seeds"] == "0, 1, 2"
    assert (
        c4["metrics"]["mask AP"]["text"]
        == "25.0 ± 5.0 (3)"
        == POINTS.reproduced(seed_summary([20.0, 25.0, 30.0]))
    )
    assert c4["metrics"]["mask AP"]["value"] == pytest.approx(25.0)
    assert c4["metrics"]["box AP"]["text"] == "25.0 ± 0.0 (3)"
    assert c4["s_per_iter"] == "0.200" and c4["input_px"] == "176" and c4["iter_batch"] == "500 × 8"
    # seeds in numeric order; the mean over the seeds that recorded the metric, and their count
    assert [r["seed"] for r in fpn["rows"]] == [2, 10]
    assert fpn["metrics"]["mask AP"]["text"] == "50.0 (1)" and fpn["iter_batch"] == "1000 × 8"
    assert fpn["s_per_iter"] == "0.300"


def test_config_row_without_any_value_says_so() -> None:
    row = {
        "run": "x",
        "seed": 0,
        "dataset": None,
        "input_px": "–",
        "iter_batch": "–",
        "s_per_iter": NOT_RECORDED,
        "s_per_iter_value": None,
        "train_time": NOT_RECORDED,
        "train_s": None,
        "eval_time": NOT_RECORDED,
        "eval_s": None,
        "values": {"pixel error": None},
    }
    c = config_row("x", [row, {**row, "seed": 1}], ["pixel error"])
    assert c["metrics"]["pixel error"] == {"text": "–", "value": None}
    assert c["s_per_iter"] == c["train_time"] == NOT_RECORDED and c["dataset"] == "–"
    assert iter_batch_text({"iterations": None, "batch": None, "size": None}) == "–"
    assert iter_batch_text({"iterations": 9, "batch": None, "size": None}) == "9 × ?"


def test_zoo_page_has_labelled_sortable_columns_and_hidden_seed_rows(tmp_path: Path) -> None:
    from segbench.reporting.html import build_pages

    for seed in (0, 1):
        write_run(tmp_path / "results", "r50_c4", seed, 0.2, 0.1)
    build_pages("mini", tmp_path / "results", tmp_path / "reports", figure_names=[])
    html = (tmp_path / "reports" / "mini" / "runs.html").read_text()
    assert html.count('<tbody class="config"') == 1 and html.count('<tr class="seed"') == 2
    assert html.count('<tr class="seed seed-detail" hidden>') == 2
    for label in ("input (px)", "iterations × batch", "s/iter", "mask AP"):
        assert f">{label}</th>" in html
    assert 'data-sort="num"' in html and "<script>" in html
    assert 'href="#directions"' not in html  # the zoo has no claims section: the banner links the index's
