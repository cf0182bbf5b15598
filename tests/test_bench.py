"""``segbench bench``: tiny runs of every suite write result JSON, the report page shows them, bad input
fails in one line. CPU, 1 thread, seconds: the suites run with toy sizes (smoke-scale Mask R-CNN at 64 x 64,
one iteration), so the numbers are meaningless; the plumbing, the keys and the reference are not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segbench.bench import unet as unet_suite
from segbench.cli import main
from segbench.cli.bench_cmd import SUITE_NAMES

# Toy options per suite (what a test can afford); the CLI runs each into the same folder.
TINY = {
    "maskrcnn": [
        "--scale",
        "smoke",
        "--size",
        "64x64",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--runs",
        "r50_fpn,r50_fpn_mlp2",
    ],
    "unet": [
        "--base-channels",
        "2",
        "--tile",
        "220",
        "--tiles",
        "1",
        "--image-size",
        "64",
        "--train-steps",
        "1",
    ],
    "coco_eval": ["--repeats", "1"],
    "isbi_metrics": ["--synthetic", "--slices", "1", "--repeats", "1"],
    "roi_ops": ["--rois-per-image", "4", "--repeats", "1"],
}


@pytest.fixture(scope="module")
def bench_results(tmp_path_factory) -> Path:
    """Every suite run once through the CLI into a folder whose name needs HTML escaping."""
    from segbench.determinism import settings

    out = tmp_path_factory.mktemp("bench") / "a<b>&c"
    for suite, options in TINY.items():
        threads = ["--threads", "1"] if suite in ("maskrcnn", "unet", "roi_ops") else []
        flags = settings()
        assert main(["bench", suite, *options, *threads, "--out", str(out)]) == 0
        assert settings() == flags  # training's determinism flags are the suite's only, restored after it
    return out


def test_suites_match_the_cli():
    from segbench.bench import MODULES, SUITES

    assert list(MODULES) == list(SUITE_NAMES) == list(SUITES)


def test_maskrcnn_json_has_timings_memory_and_the_torchvision_reference(bench_results):
    out = bench_results
    record = json.loads((out / "maskrcnn-cpu.json").read_text())
    assert record["suite"] == "maskrcnn" and record["status"] == "ok"
    assert record["device"] == "cpu" and record["device_tag"] == "cpu" and record["threads"] == 1
    assert record["command"].startswith("segbench bench maskrcnn --scale smoke --size 64x64")
    assert record["provenance"]["git_commit"] and record["provenance"]["package_versions"]["torch"]
    assert record["settings"]["size"] == "64x64" and record["settings"]["scale"] == "smoke"
    assert record["settings"]["overrides"] == {"pretrained": False, "box_score_thresh": 0.0}
    # measured as training runs: deterministic mode, and the smoke scale's norm and frozen stages
    flags = record["settings"]["determinism"]
    assert flags["deterministic_algorithms"] and flags["cudnn_deterministic"] and not flags["cudnn_benchmark"]
    fpn, mlp = record["rows"]
    assert fpn["run"] == "r50_fpn" and mlp["run"] == "r50_fpn_mlp2"
    for row in (fpn, mlp):
        assert row["training_starts_from"] == "synthetic-pretrained" and row["norm"] == "bn"
        assert row["frozen_stages"] == ["conv1", "bn1", "layer1"]
    for row in (fpn, fpn["reference"]):
        assert row["train_img_s"] > 0 and row["train_ms_per_step"] > 0 and row["infer_ms_per_img"] > 0
        assert row["train_peak_mb"] is not None and row["train_peak_mb"] >= 0
        assert row["infer_peak_mb"] is not None and row["infer_peak_mb"] >= 0
    ref = fpn["reference"]
    assert ref["model"] == "maskrcnn_resnet50_fpn" and ref["weights_copied"] is True
    assert ref["params"] == pytest.approx(
        fpn["params"], abs=32
    )  # torchvision's extra background mask channel
    assert fpn["train_time_ratio"] > 0 and fpn["infer_time_ratio"] > 0
    assert fpn["train_time_ratio"] == pytest.approx(fpn["train_ms_per_step"] / ref["train_ms_per_step"])
    agreement = ref["agreement"]
    assert agreement["same_boxes"] and agreement["max_abs_loss_difference"] < 1e-4
    assert agreement["mask_pixels_differing"] < 1e-3
    # every timing with its spread and samples, ours beside the reference measured in the same run
    assert [(t["what"], t["impl"], t["reference"]) for t in fpn["timings"]] == [
        ("r50_fpn: train step (ms/step)", "segbench", False),
        ("r50_fpn: inference (ms/img)", "segbench", False),
        ("r50_fpn: train step (ms/step)", "torchvision", True),
        ("r50_fpn: inference (ms/img)", "torchvision", True),
    ]
    assert fpn["timings"][0]["median"] == pytest.approx(fpn["train_ms_per_step"])
    assert fpn["timings"][2]["min"] == pytest.approx(ref["train_min_ms_per_step"])
    # a variant torchvision lacks: no reference, and why
    assert mlp["reference"] is None and mlp["train_time_ratio"] is None
    assert "mlp2" in mlp["reference_reason"] and mlp["train_img_s"] > 0


def test_every_suite_records_min_median_max_and_the_samples_of_its_timings(bench_results):
    for path in sorted(bench_results.glob("*.json")):
        record = json.loads(path.read_text())
        timings = [t for row in record["rows"] for t in row["timings"]]
        assert timings or record["status"] == "skipped", path.name
        for t in timings:
            assert t["min"] <= t["median"] <= t["max"] and len(t["samples"]) == t["n"] >= 1, (path.name, t)
            assert (
                t["min"] == min(t["samples"]) and t["max"] == max(t["samples"]) and t["unit"] in ("ms", "s")
            )
    roi = json.loads((bench_results / "roi_ops-cpu.json").read_text())
    references = {t["impl"] for row in roi["rows"] for t in row["timings"] if t["reference"]}
    assert references == {"torchvision roi_align (avg)"}


def test_other_suites_write_rows(bench_results):
    out = bench_results
    unet = json.loads((out / "unet-cpu.json").read_text())
    assert unet["rows"][0]["tiles_per_s"] > 0 and unet["rows"][0]["ms_per_image"] > 0
    roi = json.loads((out / "roi_ops-cpu.json").read_text())
    assert {r["layer"] for r in roi["rows"]} >= {"torchvision roi_align (avg)", "roi_align max (ours)"}
    assert all(r["total_ms"] > 0 for r in roi["rows"])
    assert roi["settings"]["determinism"]["deterministic_algorithms"]
    isbi = json.loads((out / "isbi_metrics-cpu.json").read_text())
    assert isbi["rows"][0]["stack"] == "1x512x512" and isbi["rows"][0]["median_s"] > 0
    coco = json.loads((out / "coco_eval-cpu.json").read_text())
    if coco["status"] == "skipped":
        assert "coco_val2014_100" in coco["reason"] and coco["rows"] == []
    else:
        assert [r["iou_type"] for r in coco["rows"]] == ["bbox", "segm"]
        assert all(r["max_abs_stat_difference"] <= 1e-12 for r in coco["rows"])


def test_unet_times_a_training_step_in_three_variants(bench_results):
    """float32, the engine's CPU amp (bfloat16 autocast) and channels_last, each with its timing, speed-up
    over float32 and column; the loss check from the same weights in the row and the notes."""
    record = json.loads((bench_results / "unet-cpu.json").read_text())
    row = record["rows"][0]
    assert row["train_steps"] == 1 and row["train_amp_dtype"] == "bfloat16"
    assert row["train_lr"] == 0.01 and row["train_momentum"] == 0.99  # unet_isbi's schedule
    variants = ("train_ms_per_step", "train_ms_per_step_amp", "train_ms_per_step_channels_last")
    for key in (*variants, "train_speedup_amp", "train_speedup_channels_last"):
        assert row[key] > 0, key
    assert row["train_speedup_amp"] == pytest.approx(row["train_ms_per_step"] / row["train_ms_per_step_amp"])
    assert row["train_speedup_channels_last"] == pytest.approx(
        row["train_ms_per_step"] / row["train_ms_per_step_channels_last"]
    )
    keys = [c["key"] for c in record["columns"]]
    inference = [c["key"] for c in unet_suite.COLUMNS]
    assert keys[: len(inference)] == inference  # the inference columns unchanged, training's after them
    assert {*variants, "train_speedup_amp", "train_speedup_channels_last"} <= set(keys)
    labels = [c["label"] for c in record["columns"]]
    assert "train ms/step bf16 autocast" in labels and "bf16 speed-up" in labels
    assert [t["what"] for t in row["timings"]] == [
        "tile 220 (ms/tile)",
        "image 64 (ms/image)",
        "train step 220, float32 (ms/step)",
        "train step 220, bfloat16 autocast (ms/step)",
        "train step 220, float32 channels_last (ms/step)",
    ]
    assert [t["median"] for t in row["timings"][2:]] == pytest.approx([row[k] for k in variants])
    # same weights and input: channels_last is float32 reordered, bfloat16 a few per cent off at most
    first = row["train_losses_first_two_steps"]["float32"][0]
    assert row["train_max_abs_loss_difference_channels_last"] < 1e-4
    assert 0 < row["train_max_abs_loss_difference_amp"] < 0.25 * first
    assert any(n.startswith("loss check") for n in record["notes"])
    assert record["settings"]["determinism"]["deterministic_algorithms"]


def test_unet_train_steps_0_skips_the_training_step(tmp_path):
    argv = ["--base-channels", "4", "--tile", "204", "--tiles", "1", "--image-size", "32", "--threads", "1"]
    assert main(["bench", "unet", *argv, "--train-steps", "0", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "unet-cpu.json").read_text())
    row = record["rows"][0]
    assert row["ms_per_tile"] > 0 and not [k for k in row if k.startswith("train")]
    assert record["columns"] == unet_suite.COLUMNS
    assert [t["what"] for t in row["timings"]] == ["tile 204 (ms/tile)", "image 32 (ms/image)"]
    assert "training step not timed (--train-steps 0)." in record["notes"]


def test_maskrcnn_bench_builds_the_backbone_training_builds_at_each_scale():
    """Paper: ImageNet start, FrozenBatchNorm, stem and res2 frozen (torchvision's reference alike); mini:
    GroupNorm."""
    from segbench.bench.maskrcnn import (
        FROZEN_STAGES,
        bench_config,
        freeze,
        torchvision_reference,
        training_backbone,
    )
    from segbench.models.maskrcnn import settings_from_config
    from segbench.registry import resolve_run

    assert training_backbone(resolve_run("r50_fpn", "paper")) == ("imagenet", "frozen_bn", FROZEN_STAGES)
    assert training_backbone(resolve_run("r50_fpn", "mini")) == ("synthetic-pretrained", "gn", FROZEN_STAGES)
    cfg = bench_config("r50_fpn", "paper", (320, 320))
    assert cfg["model"]["norm"] == "frozen_bn" and cfg["model"]["pretrained"] is False
    theirs, name, how = torchvision_reference(settings_from_config(cfg))
    freeze(theirs, FROZEN_STAGES)
    body = theirs.backbone.body
    assert name == "maskrcnn_resnet50_fpn" and "frozen_bn" in how
    assert type(body.bn1).__name__ == "FrozenBatchNorm2d"
    assert not any(p.requires_grad for p in body.layer1.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters())


def test_report_shows_every_suite_escaped(bench_results, tmp_path, capsys):
    out = bench_results
    assert main(["bench", "report", "--results", str(out), "--out", str(tmp_path / "site")]) == 0
    assert "5 result files" in capsys.readouterr().out
    html = (tmp_path / "site" / "index.html").read_text()
    for suite in TINY:
        assert f'id="bench-{suite}-cpu"' in html
    for cell in (
        "r50_fpn_mlp2",
        "maskrcnn_resnet50_fpn",
        "roi_align max (ours)",
        "1x512x512",
        "220 -&gt; 36",
        "train ms/step bf16 autocast",
    ):
        assert cell in html
    coco = json.loads((out / "coco_eval-cpu.json").read_text())
    assert ("Skipped: shared data" in html) if coco["status"] == "skipped" else ("<td>segm</td>" in html)
    # the command (with the folder a<b>&c) and every other string are text, never markup
    assert "a&lt;b&gt;&amp;c" in html and "a<b>" not in html
    assert "threads" in html and "commit" in html and "<code>segbench bench maskrcnn" in html


def test_report_without_results_says_so(tmp_path, capsys):
    assert (
        main(["bench", "report", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "site")]) == 0
    )
    assert "No benchmark results" in (tmp_path / "site" / "index.html").read_text()


def test_terminal_table_and_path_are_printed(tmp_path, capsys):
    assert main(["bench", "roi_ops", "--rois-per-image", "2", "--repeats", "1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "roi_align max (ours)" in printed and f"wrote {tmp_path / 'roi_ops-cpu.json'}" in printed


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "nope"],
        ["bench", "maskrcnn", "--size", "64by64"],
        ["bench", "maskrcnn", "--size", "16x16"],
        ["bench", "maskrcnn", "--amp", "--device", "cpu"],
        ["bench", "maskrcnn", "--runs", "unet_isbi"],
        ["bench", "unet", "--runs", "r50_fpn"],
        ["bench", "unet", "--train-steps", "-1"],
        ["bench", "all", "--iters", "3"],
        ["bench", "report", "--iters", "3"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("segbench: error: ")
    assert not (tmp_path / "out").exists()  # nothing written


def test_all_runs_every_suite_with_its_defaults(tmp_path, monkeypatch, capsys):
    """``bench all`` with every suite's defaults shrunk to toy sizes (the real defaults take minutes)."""
    from segbench.bench import MODULES

    tiny_defaults = {
        "maskrcnn": {
            "scale": "smoke",
            "size": "64x64",
            "iters": 1,
            "warmup": 0,
            "runs": "r50_fpn_person_faster",
        },
        "unet": {"base_channels": 2, "tile": 220, "tiles": 1, "image_size": 32, "train_steps": 1},
        "coco_eval": {"repeats": 1},
        "isbi_metrics": {"synthetic": True, "slices": 1, "repeats": 1},
        "roi_ops": {"rois_per_image": 2, "repeats": 1},
    }
    for suite, values in tiny_defaults.items():
        for key, value in values.items():
            monkeypatch.setitem(MODULES[suite].OPTIONS, key, value)
    assert main(["bench", "all", "--threads", "1", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert written == sorted(f"{suite}-cpu.json" for suite in SUITE_NAMES)
    for path in tmp_path.glob("*.json"):
        record = json.loads(path.read_text())
        assert record["command"] == f"segbench bench all --threads 1 --out {tmp_path}"
    maskrcnn = json.loads((tmp_path / "maskrcnn-cpu.json").read_text())
    assert maskrcnn["rows"][0]["reference"]["model"] == "fasterrcnn_resnet50_fpn"
    assert "next: segbench bench report" in capsys.readouterr().out


def test_bench_page_prints_no_machine_paths_and_titles_the_unet_tile_size() -> None:
    from segbench.bench import suite_title
    from segbench.bench.report import portable

    settings = {"data": "/work/shared/data/coco_val2014_100", "out": "/home/u/x/y.json", "repeats": 5}
    assert portable(settings) == {"data": "<data root>/coco_val2014_100", "out": ".../x/y.json", "repeats": 5}
    title = suite_title("unet", {"tile": 572, "image_size": 512})
    assert "572 x 572 input tiles" in title and "572 tiles/s" not in title
    assert suite_title("unet", {"tile": 572, "train_steps": 5}).endswith(", ms per training step")
