"""Table assembly: means and stds over seeds, deltas, difference rows, per-column runs, directions."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from segbench.errors import InputError
from segbench.formatting import POINTS
from segbench.io import write_json_atomic
from segbench.metrics.coco import DET_STATS, KPT_STATS
from segbench.provenance import config_hash
from segbench.registry import load_registry, resolve_run, runs_for_tables
from segbench.reporting.view import direction_view
from segbench.tables.assemble import assemble_table, write_table
from segbench.tables.render import to_markdown


def fake_metrics(root: Path, scale: str, tables: list[str], value_of) -> None:
    """Write a metrics.json for every run instance the tables need; value_of(run, seed) -> float."""
    for rs in runs_for_tables(tables, scale, load_registry()):
        v = value_of(rs.run, rs.seed)
        coco = {k: v for k in DET_STATS}  # what the engine records, AR included
        metrics = {
            "segm": coco,
            "bbox": {k: v / 2 for k in coco},
            "keypoints": {k: v for k in KPT_STATS},
            "isbi": {"warping_error": v, "rand_error": v, "pixel_error": v},
            "ctc": {"seg": v, "iou": v},
        }
        write_json_atomic(
            root / scale / "runs" / rs.run_id / "metrics.json",
            {
                "run_id": rs.run_id,
                "metrics": metrics,
                "config_hash": config_hash(resolve_run(rs.run, scale, rs.seed)),
                "provenance": {"git_commit": "abc", "wall_time_s": 1.0},
                "train_wall_time_s": 2.0,
            },
        )


def test_recall_columns_come_from_the_runs_ar100_without_paper_values(tmp_path):
    """AR (mask AR100) and ARbb (box AR100) beside the paper's AP columns; the paper prints no AR."""
    fake_metrics(tmp_path, "mini", ["table2c"], lambda run, seed: 0.3 + 0.01 * seed)
    path = tmp_path / "mini" / "runs" / "r50_c4-seed1" / "metrics.json"
    record = json.loads(path.read_text())
    record["metrics"]["segm"]["AR100"] = 0.5
    record["metrics"]["bbox"]["AR100"] = 0.6
    write_json_atomic(path, record)
    table = assemble_table("table2c", "mini", tmp_path)
    assert table["columns"][-2:] == ["AR", "ARbb"]
    row = next(r for r in table["rows"] if r["id"] == "roialign_avg")
    assert row["values"]["AR"]["per_seed"] == pytest.approx([30.0, 50.0, 32.0])
    assert row["values"]["ARbb"]["per_seed"] == pytest.approx([15.0, 60.0, 16.0])
    assert row["values"]["AR"]["paper"] is None and row["values"]["AR"]["delta"] is None
    header = to_markdown(table).splitlines()
    assert any("AR" in line and "ARbb" in line for line in header)


def test_seed_statistics_delta_and_directions(tmp_path):
    # RoIAlign-avg (r50_c4) 0.30/0.32/0.34, RoIPool 0.20 on every seed, others 0.25.
    values = {"r50_c4": [0.30, 0.32, 0.34], "r50_c4_roipool": [0.20] * 3}
    fake_metrics(tmp_path, "mini", ["table2c"], lambda run, seed: values.get(run, [0.25] * 3)[seed])
    table = assemble_table("table2c", "mini", tmp_path)
    rows = {r["id"]: r for r in table["rows"]}
    cell = rows["roialign_avg"]["values"]["AP75"]
    assert cell["n"] == 3 and cell["per_seed"] == pytest.approx([30.0, 32.0, 34.0])
    assert cell["mean"] == pytest.approx(32.0)
    assert cell["std"] == pytest.approx(statistics.stdev([30.0, 32.0, 34.0]))
    assert cell["paper"] == 31.5 and cell["delta"] == pytest.approx(0.5)
    first = next(d for d in table["directions"] if (d["worse"], d["metric"]) == ("roipool", "AP75"))
    assert first["claim"].startswith("roialign_avg > roipool")
    assert first["verdict"] == "reproduced" and first["gap"] == pytest.approx(12.0)
    assert first["n"] == 3 and first["paired"] and first["p_value"] < 0.05 <= 1  # paired over the same seeds
    assert first["gap_per_seed"] == pytest.approx([10.0, 12.0, 14.0]) and first["sd_used"] == pytest.approx(
        2.0
    )
    assert first["kind"] == "superiority" and first["p_adjusted"] >= first["p_value"]


def test_std_floor_keeps_deterministic_rows_from_inflating_the_gap(tmp_path):
    """Both rows with std 0: the gap is tested with a spread of max(1 % of |mean|, 0.1 AP), not 0."""
    values = {"r50_c4": [0.300, 0.300, 0.300], "r50_c4_roipool": [0.298, 0.298, 0.298]}
    fake_metrics(tmp_path, "mini", ["table2c"], lambda run, seed: values.get(run, [0.25] * 3)[seed])
    first = assemble_table("table2c", "mini", tmp_path)["directions"][0]
    assert first["sd_observed"] == pytest.approx(0.0, abs=1e-9) and first["std_floor"] == pytest.approx(0.30)
    assert first["sd_used"] == pytest.approx(0.30) and math.isfinite(first["t"])
    assert first["verdict"] == "inconclusive"  # 0.2 AP against a 0.3 AP floor over 3 seeds


def test_claims_against_a_segbench_baseline_are_ours(tmp_path):
    fake_metrics(
        tmp_path,
        "mini",
        ["unet_table2"],
        lambda run, seed: 0.05 if run.startswith("threshold") else [0.50, 0.52, 0.51][seed],
    )
    table = assemble_table("unet_table2", "mini", tmp_path)
    assert {d["source"] for d in table["directions"]} == {"ours"}
    assert all(d["paper_gap"] is None for d in table["directions"])
    md = to_markdown(table)
    assert (
        "Against our baselines:" in md
        and "The paper's claims:" not in md
        and "paired t-test over seeds, n 3" in md
    )


def test_the_test_uses_the_spread_of_the_per_seed_gaps(tmp_path):
    values = {"r50_c4": [0.30, 0.32, 0.34], "r50_c4_roipool": [0.20, 0.21, 0.22]}
    fake_metrics(tmp_path, "mini", ["table2c"], lambda run, seed: values.get(run, [0.25] * 3)[seed])
    direction = assemble_table("table2c", "mini", tmp_path)["directions"][0]
    assert direction["gap_per_seed"] == pytest.approx([10.0, 11.0, 12.0])
    assert direction["sd_used"] == pytest.approx(1.0) and direction["df"] == 2


def test_one_seed_is_untested_and_says_so(tmp_path):
    fake_metrics(tmp_path, "smoke", ["table2b"], lambda run, seed: 0.4 if run == "r50_c4_softmax" else 0.1)
    table = assemble_table("table2b", "smoke", tmp_path)
    assert table["directions"][0]["verdict"] == "untested"
    assert "**untested** (1 seed < 3)" in to_markdown(table)


def test_difference_rows_and_reference_rows(tmp_path):
    fake_metrics(
        tmp_path,
        "smoke",
        ["roialign_fpn", "table1"],
        lambda run, seed: {"r50_fpn": 0.35, "r50_fpn_roipool": 0.33}.get(run, 0.1),
    )
    gain = assemble_table("roialign_fpn", "smoke", tmp_path)["rows"][0]["values"]
    assert gain["delta_mask_AP"]["mean"] == pytest.approx(2.0)
    assert gain["delta_box_AP"]["mean"] == pytest.approx(1.0)
    table1 = assemble_table("table1", "smoke", tmp_path)
    mnc = table1["rows"][0]
    assert (
        mnc["reference_only"] and mnc["values"]["AP"]["mean"] is None and mnc["values"]["AP"]["paper"] == 24.6
    )
    assert table1["evaluated_on"] == "val"


def test_lower_is_better_and_column_runs(tmp_path):
    fake_metrics(
        tmp_path,
        "smoke",
        ["unet_table1", "unet_table2"],
        lambda run, seed: {
            "unet_isbi": 0.01,
            "swcnn_isbi": 0.0105,
            "threshold_isbi": 0.05,
            "unet_phc": 0.9,
            "unet_hela": 0.7,
            "threshold_phc": 0.5,
            "threshold_hela": 0.4,
        }[run],
    )
    t1 = assemble_table("unet_table1", "smoke", tmp_path)
    better = [d for d in t1["directions"] if d["kind"] == "superiority"]
    assert better and all(d["gap"] > 0 for d in better)  # lower error is better: the gap is oriented
    # 1 seed at smoke is too few to test any claim
    assert {d["verdict"] for d in t1["directions"]} == {"untested"}
    unet = {r["id"]: r for r in t1["rows"]}["unet"]
    assert unet["values"]["warping_error"]["mean"] == pytest.approx(0.01)  # not scaled by 100
    t2 = assemble_table("unet_table2", "smoke", tmp_path)
    row = {r["id"]: r for r in t2["rows"]}["unet"]["values"]
    assert row["PhC-U373 SEG"]["mean"] == pytest.approx(0.9)
    assert row["DIC-HeLa SEG"]["mean"] == pytest.approx(0.7)
    assert all(d["gap"] > 0 and d["verdict"] == "untested" for d in t2["directions"])


def test_missing_metrics_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(InputError, match=r"metrics\.json: missing; produce it with `segbench train --run"):
        assemble_table("table2b", "smoke", tmp_path)


def test_write_table_writes_three_formats_atomically(tmp_path):
    fake_metrics(tmp_path, "smoke", ["class_agnostic"], lambda run, seed: 0.3)
    path = write_table("class_agnostic", "smoke", tmp_path)
    data = json.loads(path.read_text())
    assert data["provenance"]["scale"] == "smoke" and data["provenance"]["git_commit"]
    assert path.with_suffix(".csv").read_text().startswith("table,scale,row")
    assert "class-agnostic" in path.with_suffix(".md").read_text()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_a_gap_within_noise_is_not_called_reproduced(tmp_path):
    values = {"r50_c4": [0.30, 0.20, 0.40], "r50_c4_roipool": [0.29, 0.21, 0.38]}  # mean gap 0.7 AP, std ~10
    fake_metrics(tmp_path, "mini", ["table2c"], lambda run, seed: values.get(run, [0.25] * 3)[seed])
    first = assemble_table("table2c", "mini", tmp_path)["directions"][0]
    assert first["gap"] > 0 and first["interval"]["low"] < 0
    assert first["verdict"] == "inconclusive"


def test_a_run_without_masks_has_no_mask_ap(tmp_path):
    """Table 5's Faster R-CNN row has box AP only: its mask and keypoint cells are empty, not errors."""
    fake_metrics(tmp_path, "smoke", ["table5"], lambda run, seed: 0.5)
    faster = tmp_path / "smoke" / "runs" / "r50_fpn_person_faster-seed0" / "metrics.json"
    record = json.loads(faster.read_text())
    record["metrics"] = {"bbox": record["metrics"]["bbox"]}
    faster.write_text(json.dumps(record))
    row = assemble_table("table5", "smoke", tmp_path)["rows"][0]["values"]
    assert row["APbb_person"]["mean"] == pytest.approx(25.0)
    assert row["APmask_person"]["mean"] is None and row["APkp"]["mean"] is None


def test_stale_metrics_are_refused(tmp_path):
    """A metrics.json computed under another config (the registry entry changed since) names the fix."""
    fake_metrics(tmp_path, "smoke", ["class_agnostic"], lambda run, seed: 0.3)
    path = tmp_path / "smoke" / "runs" / "r50_c4_agnostic-seed0" / "metrics.json"
    record = json.loads(path.read_text())
    record["config_hash"] = "0123456789abcdef"
    path.write_text(json.dumps(record))
    with pytest.raises(InputError, match=r"r50_c4_agnostic-seed0/metrics.json: stale.*--force"):
        assemble_table("class_agnostic", "smoke", tmp_path)


def test_cli_table_prints_markdown_and_still_writes_the_files(tmp_path, capsys):
    from segbench.cli import main

    fake_metrics(tmp_path, "smoke", ["table2b"], lambda run, seed: 0.3 if run == "r50_c4" else 0.2)
    assert main(["table", "table2b", "--scale", "smoke", "--results", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    written = tmp_path / "smoke" / "tables" / "table2b.md"
    assert out == written.read_text() and out.startswith("# table2b:") and "wrote" in err
    written.unlink()
    assert main(["table", "table2b", "--scale", "smoke", "--results", str(tmp_path), "--no-write"]) == 0
    assert capsys.readouterr().out.startswith("# table2b:") and not written.exists()


def test_cli_list_runs_shows_state_headline_metric_and_train_time(tmp_path, capsys):
    from segbench.cli import main

    fake_metrics(tmp_path, "smoke", ["table2b"], lambda run, seed: 0.3)
    done = tmp_path / "smoke" / "runs" / "r50_c4-seed0" / "train_done.json"
    write_json_atomic(done, {"config_hash": config_hash(resolve_run("r50_c4", "smoke", 0))})
    stale = tmp_path / "smoke" / "runs" / "r50_c4_softmax-seed0" / "train_done.json"
    write_json_atomic(stale, {"config_hash": "old"})
    assert main(["list", "--runs", "--scale", "smoke", "--table", "table2b", "--results", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "current" in lines["r50_c4-seed0"] and "mask AP 30" in lines["r50_c4-seed0"]
    assert "2 s" in lines["r50_c4-seed0"]  # train_wall_time_s of the fake metrics.json
    assert "stale" in lines["r50_c4_softmax-seed0"]


def test_noninferiority_is_judged_against_the_registry_margin(tmp_path):
    """reference_torchvision: ours (r50_fpn) no worse than torchvision's MaskRCNN by more than 1 AP."""
    values = {"r50_fpn": [0.32, 0.34, 0.36], "r50_fpn_torchvision": [0.32, 0.34, 0.36]}
    fake_metrics(tmp_path, "mini", ["reference_torchvision"], lambda run, seed: values[run][seed])
    table = assemble_table("reference_torchvision", "mini", tmp_path)
    mask_ap = next(d for d in table["directions"] if d["metric"] == "AP")
    assert mask_ap["kind"] == "noninferiority" and mask_ap["source"] == "ours" and mask_ap["margin"] == 1.0
    assert mask_ap["claim"] == "ours ≥ torchvision − 1 on AP"
    assert mask_ap["interval"]["low"] > -1.0 and mask_ap["verdict"] == "reproduced"

    values["r50_fpn"] = [0.24, 0.26, 0.28]  # 8 AP short
    fake_metrics(tmp_path, "mini", ["reference_torchvision"], lambda run, seed: values[run][seed])
    table = assemble_table("reference_torchvision", "mini", tmp_path)
    assert {d["verdict"] for d in table["directions"]} == {"contradicted"}
    assert "**contradicted**" in to_markdown(table)


def test_noninferior_claim_needs_three_seeds(tmp_path):
    fake_metrics(tmp_path, "smoke", ["reference_torchvision"], lambda run, seed: 0.3)
    table = assemble_table("reference_torchvision", "smoke", tmp_path)
    assert {d["verdict"] for d in table["directions"]} == {"untested"}


def test_equivalence_claim_is_judged_by_tost_over_three_seeds(tmp_path):
    """class_agnostic: class-specific within 1.0 AP of class-agnostic (the paper: 30.3 vs 29.7)."""
    values = {"r50_c4": [0.300, 0.310, 0.320], "r50_c4_agnostic": [0.298, 0.307, 0.319]}
    fake_metrics(tmp_path, "mini", ["class_agnostic"], lambda run, seed: values[run][seed])
    (claim,) = assemble_table("class_agnostic", "mini", tmp_path)["directions"]
    assert claim["kind"] == "equivalence" and claim["gap"] == pytest.approx(0.2)
    assert -1.0 < claim["interval"]["low"] and claim["interval"]["high"] < 1.0
    assert claim["verdict"] == "reproduced" and "TOST" in claim["test"]
    values["r50_c4_agnostic"] = [0.297, 0.302, 0.307]  # mean gap 0.8 inside ±1, its interval not
    fake_metrics(tmp_path, "mini", ["class_agnostic"], lambda run, seed: values[run][seed])
    (claim,) = assemble_table("class_agnostic", "mini", tmp_path)["directions"]
    assert claim["verdict"] == "inconclusive"
    values["r50_c4_agnostic"] = [0.28, 0.29, 0.30]  # 2 AP apart
    fake_metrics(tmp_path, "mini", ["class_agnostic"], lambda run, seed: values[run][seed])
    (claim,) = assemble_table("class_agnostic", "mini", tmp_path)["directions"]
    assert claim["verdict"] == "contradicted"
    fake_metrics(tmp_path, "smoke", ["class_agnostic"], lambda run, seed: 0.3)
    (claim,) = assemble_table("class_agnostic", "smoke", tmp_path)["directions"]
    assert claim["verdict"] == "untested"


def test_the_report_words_each_claim_by_its_kind(tmp_path):
    """An equivalence claim reads "A on par with B (within ±margin)", not "better than": RoIWarp +2.7 AP over
    RoIPool is then plainly a miss of "on par", where "better than ... not reproduced" read as a contradiction."""
    values = {"r50_c4": [0.300, 0.310, 0.320], "r50_c4_agnostic": [0.297, 0.302, 0.307]}
    fake_metrics(tmp_path, "mini", ["class_agnostic"], lambda run, seed: values[run][seed])
    (claim,) = assemble_table("class_agnostic", "mini", tmp_path)["directions"]
    labels = {"class_specific": "A", "class_agnostic": "B"}
    assert direction_view(claim, labels, POINTS, False)["claim_text"] == "A on par with B on AP (within ±1)"
    noninferior = {**claim, "kind": "noninferiority"}
    assert (
        direction_view(noninferior, labels, POINTS, False)["claim_text"]
        == "A no worse than B on AP (margin 1)"
    )
    superior = {**claim, "kind": "superiority"}
    assert direction_view(superior, labels, POINTS, False)["claim_text"] == "A better than B on AP"
