"""The written table files say the truth about their scale and are rewritten only when their content
changes: per-scale ``evaluated_on``, the unet_table2 SEG / IoU columns and note, where the runs were
trained, and a re-assembly of unchanged runs that leaves the JSON, CSV and Markdown untouched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

import segbench.tables.assemble as assemble
from segbench.data.biomedical import LabelledImage, held_out_split
from segbench.data.registry import dataset_entry
from segbench.errors import InputError
from segbench.io import write_json_atomic
from segbench.metrics.coco import DET_STATS
from segbench.provenance import config_hash
from segbench.registry import (
    evaluated_on,
    load_registry,
    registry_path,
    resolve_run,
    runs_for_tables,
    validate_registry,
)
from segbench.tables.assemble import assemble_table, update_table, write_table
from segbench.tables.render import to_markdown

PAST = 1_000_000_000  # an mtime (2001) no write of this test can give a file


def fake_runs(root: Path, scale: str, tables: list[str], value_of=lambda run, seed: 0.3) -> None:
    """A metrics.json for every run instance the tables need at ``scale`` (every metric ``value_of``)."""
    for rs in runs_for_tables(tables, scale, load_registry()):
        v = value_of(rs.run, rs.seed)
        write_json_atomic(
            root / scale / "runs" / rs.run_id / "metrics.json",
            {
                "run_id": rs.run_id,
                "metrics": {
                    "segm": {k: v for k in DET_STATS},
                    "bbox": {k: v for k in DET_STATS},
                    "isbi": {"warping_error": v, "rand_error": v, "pixel_error": v},
                    "ctc": {"seg": v, "iou": v + 0.25},
                },
                "config_hash": config_hash(resolve_run(rs.run, scale, rs.seed)),
                "provenance": {"git_commit": "abc1234def", "device": "cpu (run machine)", "host": "trainer"},
                "train_wall_time_s": 2.0,
            },
        )


def table_files(path: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(path.parent.glob("class_agnostic.*"))
    }


def age(path: Path) -> None:
    """Give the table's three files an old mtime, so that any rewrite shows."""
    for p in path.parent.glob(f"{path.stem}.*"):
        os.utime(p, ns=(PAST * 10**9, PAST * 10**9))


def elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Assemble from now on at another time, commit and machine."""
    real = assemble.provenance

    def moved(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return {
            **real(*args, **kwargs),
            "created_utc": "2099-01-01T00:00:00Z",
            "git_commit": "f" * 40,
            "host": "another-host",
            "device": "cpu (another machine, 64 threads)",
            "machine_signature_hash": "0" * 12,
            "package_versions": {"torch": "9.9.9"},
        }

    monkeypatch.setattr(assemble, "provenance", moved)


def test_reassembling_unchanged_runs_elsewhere_rewrites_no_file(tmp_path, monkeypatch):
    fake_runs(tmp_path, "smoke", ["class_agnostic"])
    first = update_table("class_agnostic", "smoke", tmp_path)
    assert first.changed and {p.suffix for p in first.written} == {".json", ".csv", ".md"}
    age(first.path)
    before = table_files(first.path)
    elsewhere(monkeypatch)
    again = update_table("class_agnostic", "smoke", tmp_path)
    assert not again.changed and again.written == ()
    assert table_files(first.path) == before  # bytes and mtimes
    assert json.loads(first.path.read_text())["provenance"]["host"] != "another-host"


def test_cli_says_unchanged_and_leaves_the_files(tmp_path, monkeypatch, capsys):
    from segbench.cli import main

    fake_runs(tmp_path, "smoke", ["class_agnostic"])
    args = ["table", "class_agnostic", "--scale", "smoke", "--results", str(tmp_path)]
    assert main(args) == 0
    assert "class_agnostic: wrote class_agnostic.json, class_agnostic.csv, class_agnostic.md" in (
        capsys.readouterr().err
    )
    path = tmp_path / "smoke" / "tables" / "class_agnostic.json"
    age(path)
    before = table_files(path)
    elsewhere(monkeypatch)
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "class_agnostic: unchanged" in err and "wrote" not in err
    assert out == path.with_suffix(".md").read_text()  # the Markdown on disk, as before
    assert table_files(path) == before


def test_a_changed_metric_rewrites_the_table(tmp_path, monkeypatch):
    fake_runs(tmp_path, "smoke", ["class_agnostic"])
    path = write_table("class_agnostic", "smoke", tmp_path)
    age(path)
    before = table_files(path)
    fake_runs(tmp_path, "smoke", ["class_agnostic"], lambda run, seed: 0.5 if run == "r50_c4" else 0.3)
    elsewhere(monkeypatch)
    done = update_table("class_agnostic", "smoke", tmp_path)
    assert {p.suffix for p in done.written} == {".json", ".csv", ".md"}
    after = table_files(path)
    assert all(after[name][0] != before[name][0] and after[name][1] != before[name][1] for name in before)
    table = json.loads(path.read_text())
    assert table["rows"][0]["values"]["AP"]["mean"] == pytest.approx(50.0)
    assert table["provenance"]["host"] == "another-host"  # a real change records its assembly


def test_only_a_missing_or_outdated_file_is_rewritten(tmp_path):
    fake_runs(tmp_path, "smoke", ["class_agnostic"])
    path = write_table("class_agnostic", "smoke", tmp_path)
    md = path.with_suffix(".md")
    md.write_text("edited by hand\n")
    path.with_suffix(".csv").unlink()
    done = update_table("class_agnostic", "smoke", tmp_path)
    assert sorted(p.suffix for p in done.written) == [".csv", ".md"]
    assert md.read_text() == to_markdown(json.loads(path.read_text()))


def test_provenance_line_says_where_the_runs_were_trained_and_where_assembled(tmp_path):
    fake_runs(tmp_path, "smoke", ["class_agnostic"])
    done = tmp_path / "smoke" / "runs" / "r50_c4-seed0" / "train_done.json"
    write_json_atomic(
        done, {"provenance": {"git_commit": "0123456789ab", "device": "1 x H100", "host": "gpu1"}}
    )
    table = assemble_table("class_agnostic", "smoke", tmp_path)
    assert table["runs"]["r50_c4-seed0"]["trained_at"] == {
        "git_commit": "0123456789ab",
        "device": "1 x H100",
        "host": "gpu1",
    }
    line = next(x for x in to_markdown(table).splitlines() if x.startswith("Provenance:"))
    assert line.startswith(
        "Provenance: runs trained at commits `0123456`, `abc1234` on 1 x H100, host gpu1; "
    )
    assert "cpu (run machine), host trainer; assembled at commit `" in line


# -- evaluated_on per scale -------------------------------------------------------------------------


def _images(n: int) -> list[LabelledImage]:
    return [LabelledImage(f"s{i}", np.zeros((2, 2)), np.zeros((2, 2), int), Path("x"), i) for i in range(n)]


@pytest.mark.parametrize("table", ["unet_table1", "unet_budget", "unet_table2"])
@pytest.mark.parametrize("scale", ["smoke", "mini", "rehearsal"])
def test_evaluated_on_says_what_the_synthetic_scales_hold_out(table, scale):
    """The text of each synthetic scale names the images the engine's split holds out (every seed the
    same ones: no cross-validation there) and never the real stack's folds."""
    registry = load_registry()
    text = evaluated_on(table, scale, registry)
    assert text and "5 folds" not in text and "real" not in text and "6 contiguous" not in text
    run = {"unet_table2": "unet_phc"}.get(table, "unet_isbi")
    cfg = resolve_run(run, scale, 0, registry)
    entry = dataset_entry(cfg["dataset"]["name"])
    assert entry["source"] == "synthetic" and "split" not in cfg
    params = entry["params"]
    if entry["format"] == "isbi2012":
        split = held_out_split("isbi2012", [_images(params["slices"])])
        held = [img.index for img in split.held_out]
        where = f"slice {held[0]}" if len(held) == 1 else f"slices {held[0]}-{held[-1]}"
        assert f"{where} of {params['slices']}" in text, text
    elif len(params["sequences"]) > 1:
        assert f"the {params['frames']} generated frames of sequence 02" in text, text
    else:
        split = held_out_split("ctc", [_images(params["frames"])])
        n = len(split.held_out)
        assert ("the last of" if n == 1 else f"the last {n} of") + f" {params['frames']}" in text, text


def test_evaluated_on_at_the_real_scales_names_the_real_data():
    registry = load_registry()
    assert "5-fold cross-validation" in evaluated_on("unet_table1", "real_cpu", registry)
    assert "real ISBI 2012" in evaluated_on("unet_budget", "paper", registry)
    assert evaluated_on("table1", "mini", registry) == "val"  # one text for every scale
    assert evaluated_on("table2c", "mini", registry) is None


def _registry_with(change) -> dict:  # noqa: ANN001
    data = yaml.safe_load(registry_path().read_text(encoding="utf-8"))
    change(data["tables"]["unet_table1"])
    return data


def test_evaluated_on_keys_must_be_scales_of_the_table_or_default():
    def unknown(t):  # noqa: ANN001, ANN202
        t["evaluated_on"] = {"default": "x", "nowhere": "y"}

    with pytest.raises(InputError, match=r"unet_table1/evaluated_on: keys \['nowhere'\]"):
        validate_registry(_registry_with(unknown))

    def uncovered(t):  # noqa: ANN001, ANN202
        t["evaluated_on"] = {"mini": "x"}

    with pytest.raises(InputError, match=r"unet_table1/evaluated_on: no text for scales"):
        validate_registry(_registry_with(uncovered))

    def fallback(t):  # noqa: ANN001, ANN202
        t["evaluated_on"] = {"mini": "x", "default": "y"}

    registry = validate_registry(_registry_with(fallback))
    assert evaluated_on("unet_table1", "mini", registry) == "x"
    assert evaluated_on("unet_table1", "real_cpu", registry) == "y"


def test_assembled_table_carries_the_scale_text_and_the_note(tmp_path):
    fake_runs(tmp_path, "mini", ["unet_table1"])
    table = assemble_table("unet_table1", "mini", tmp_path)
    assert table["evaluated_on"] == evaluated_on("unet_table1", "mini")
    md = to_markdown(table)
    assert "5 folds" not in md and "slices 16-19 of 20 synthetic" in md
    assert "mean ± std over seeds (number of seeds)" in md and "folds" not in md.split("| row |")[0]


# -- unet_table2: SEG labelled SEG, IoU beside it ------------------------------------------------------


def test_unet_table2_shows_seg_and_iou_with_the_papers_values_in_seg():
    spec = load_registry()["tables"]["unet_table2"]
    assert spec["columns"] == ["PhC-U373 SEG", "DIC-HeLa SEG", "PhC-U373 IoU", "DIC-HeLa IoU"]
    assert {c: spec["metrics"][c] for c in spec["columns"]} == {
        "PhC-U373 SEG": "ctc.seg",
        "DIC-HeLa SEG": "ctc.seg",
        "PhC-U373 IoU": "ctc.iou",
        "DIC-HeLa IoU": "ctc.iou",
    }
    unet = next(r for r in spec["rows"] if r["id"] == "unet")
    assert unet["paper_values"] == [0.9203, 0.7756, None, None]
    assert {d["metric"] for d in spec["directions"]} == {"PhC-U373 SEG", "DIC-HeLa SEG"}
    assert spec["headline"] == "PhC-U373 SEG"
    assert "SEG" in spec["note"] and "IOU" in spec["note"] and "pixel-level" in spec["note"]


def test_unet_table2_cells_are_seg_and_iou_and_the_note_is_written(tmp_path):
    fake_runs(tmp_path, "smoke", ["unet_table2"], lambda run, seed: 0.6 if run.startswith("unet") else 0.2)
    table = assemble_table("unet_table2", "smoke", tmp_path)
    unet = next(r for r in table["rows"] if r["id"] == "unet")["values"]
    assert unet["PhC-U373 SEG"]["mean"] == pytest.approx(0.6) and unet["PhC-U373 SEG"]["paper"] == 0.9203
    assert unet["DIC-HeLa IoU"]["mean"] == pytest.approx(0.85) and unet["DIC-HeLa IoU"]["paper"] is None
    assert table["note"] and "SEG measure" in table["note"]
    md = to_markdown(table)
    assert "| row | PhC-U373 SEG | DIC-HeLa SEG | PhC-U373 IoU | DIC-HeLa IoU |" in md
    assert f"Note: {table['note']}" in md


def test_origin_caveats_take_the_training_commit_not_the_last_evaluation():
    """A run re-evaluated at a later commit (e.g. for a new score) was still trained where its
    train_done.json says: the caveat compares training commits; an untrained baseline (no training record)
    falls back to its metrics.json."""
    from segbench.tables.caveats import origin_caveats

    def rec(evaluated: str, trained: str | None) -> dict:
        where = {"git_commit": trained, "device": "cpu", "host": "vm"} if trained else None
        return {"provenance": {"git_commit": evaluated, "machine_signature_hash": "m1"}, "trained_at": where}

    def unknown(commit: str) -> None:  # no git to compare the code: each commit is its own
        return None

    same = {"a": [rec("bbbbbbb", "aaaaaaa")], "b": [rec("ccccccc", "aaaaaaa")]}
    assert origin_caveats(["a", "b"], same, code_of=unknown) == []
    differ = {"a": [rec("bbbbbbb", "aaaaaaa")], "b": [rec("bbbbbbb", "ddddddd")]}
    assert origin_caveats(["a", "b"], differ, code_of=unknown) == [
        "trained at different commits: a at aaaaaaa; b at ddddddd"
    ]
    baseline = {"a": [rec("aaaaaaa", "aaaaaaa")], "t": [rec("eeeeeee", None)]}
    assert origin_caveats(["a", "t"], baseline, code_of=unknown) == [
        "trained at different commits: a at aaaaaaa; t at eeeeeee"
    ]


def test_origin_caveats_compare_the_code_the_commits_trained_with():
    """Runs retrained in several result commits of one code change trained with the same code: no caveat.
    Where segbench/ differs the caveat says so; where one commit's code cannot be looked up it says only
    that the commits differ."""
    from segbench.tables.caveats import origin_caveats

    def rec(trained: str, machine: str = "m1") -> dict:
        return {
            "provenance": {"git_commit": "fffffff", "machine_signature_hash": machine},
            "trained_at": {"git_commit": trained},
        }

    trees = {"aaaaaaa": "tree1", "bbbbbbb": "tree1", "ccccccc": "tree2"}
    runs = {"a": [rec("aaaaaaa"), rec("bbbbbbb")], "b": [rec("bbbbbbb")], "c": [rec("ccccccc")]}
    runs["d"] = [rec("ddddddd")]
    assert origin_caveats(["a", "b"], runs, code_of=trees.get) == []
    assert origin_caveats(["a", "c"], runs, code_of=trees.get) == [
        "trained at commits whose segbench/ differs: a at aaaaaaa, bbbbbbb; c at ccccccc"
    ]
    assert origin_caveats(["b", "d"], runs, code_of=trees.get) == [
        "trained at different commits: b at bbbbbbb; d at ddddddd"
    ]
    runs["e"] = [rec("aaaaaaa", machine="m2")]
    assert origin_caveats(["a", "e"], runs, code_of=trees.get) == ["trained on 2 different machines"]


def test_a_recorded_table_renders_in_the_assemblys_column_order():
    """The table JSON is written with sorted keys; re-rendering an unchanged table from it keeps the
    registry's order of its score columns (V_rand before V_info), so a re-assembly rewrites no Markdown."""
    import json

    from segbench.tables.assemble import in_order_of, json_text

    fresh = {
        "scores": {"V_rand": "isbi.thinned.v_rand", "V_info": "isbi.thinned.v_info"},
        "rows": [{"scores": {"V_rand": {"mean": 0.9}, "V_info": {"mean": 0.8}}}],
    }
    recorded = json.loads(json_text(fresh))
    assert list(recorded["scores"]) == ["V_info", "V_rand"]  # what the round trip does
    again = in_order_of(recorded, fresh)
    assert list(again["scores"]) == ["V_rand", "V_info"] and list(again["rows"][0]["scores"]) == [
        "V_rand",
        "V_info",
    ]
    assert again == recorded  # the same content
