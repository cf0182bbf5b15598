"""The Mask R-CNN engine at the smoke scale on CPU: training, exact resume, the NaN stop, evaluation and
the COCO results conversion (segbench.engine.maskrcnn)."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from test_data_coco import serve_tiny_coco, write_tiny_coco

import segbench.engine.maskrcnn as engine
from segbench.data.coco import CocoInstances
from segbench.engine.checkpoint import FINAL_MODEL, latest_checkpoint
from segbench.errors import RunError
from segbench.io import read_jsonl
from segbench.registry import resolve_run
from segbench.trainlog import TRAIN_LOG

RUN = "r50_c4"  # the smallest smoke model; the engine does not depend on the architecture


pytestmark = pytest.mark.usefixtures("engine_on_tiny_coco")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_coco) -> tuple[dict, Path, dict]:
    """One uninterrupted smoke run (4 iterations, checkpoints every 2), shared by several tests."""
    run_dir = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        serve_tiny_coco(mp, tiny_coco)
        cfg = resolve_run(RUN, "smoke", 0)
        summary = engine.train(cfg, run_dir, Path("unused"))
    return cfg, run_dir, summary


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / FINAL_MODEL, weights_only=True)["model"]


def _fail_at_call(monkeypatch: pytest.MonkeyPatch, call: int, make_failure) -> None:
    """Make the ``call``-th forward pass (1-based, counted across runs) fail as ``make_failure`` says."""
    real, calls = engine.forward_losses, []

    def forward(*args, **kwargs):
        calls.append(1)
        loss, terms = real(*args, **kwargs)
        return make_failure(loss, terms) if len(calls) == call else (loss, terms)

    monkeypatch.setattr(engine, "forward_losses", forward)


def test_smoke_training_writes_log_checkpoints_and_final_model(finished_run):
    cfg, run_dir, summary = finished_run
    steps = [r for r in read_jsonl(run_dir / TRAIN_LOG) if "iteration" in r]
    assert [r["iteration"] for r in steps] == [1, 2, 3, 4]
    assert {"lr", "loss", "loss_classifier", "loss_mask", "loss_objectness", "time"} <= set(steps[0])
    assert steps[0]["lr"] == pytest.approx(0.01 * 0.333) and steps[3]["lr"] == pytest.approx(0.001)
    assert (run_dir / "checkpoint_00000002.pt").exists() and (run_dir / "checkpoint_00000004.pt").exists()
    assert summary["iterations"] == 4 and summary["num_classes"] == 3
    assert math.isfinite(summary["final_losses"]["loss"]) and summary["final_losses"]["loss"] > 0
    # a finished run is a no-op: same summary, no new log lines
    assert engine.train(cfg, run_dir, Path("unused")) == summary
    assert len(read_jsonl(run_dir / TRAIN_LOG)) == len(steps) + 1


def test_resume_after_interruption_reproduces_the_uninterrupted_weights(finished_run, tmp_path, monkeypatch):
    cfg, reference_dir, _ = finished_run

    def interrupt(loss, terms):
        raise KeyboardInterrupt

    _fail_at_call(monkeypatch, 3, interrupt)  # after the checkpoint at iteration 2
    with pytest.raises(KeyboardInterrupt):
        engine.train(cfg, tmp_path, Path("unused"))
    assert not (tmp_path / FINAL_MODEL).exists()
    summary = engine.train(cfg, tmp_path, Path("unused"))
    assert summary["resumed_from"] == 2
    reference, resumed = _final_weights(reference_dir), _final_weights(tmp_path)
    assert reference.keys() == resumed.keys()
    # bit-identical on the CPU: deterministic kernels, restored RNG states, a sampler that restarts at batch 2
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    losses = [r["loss"] for r in read_jsonl(tmp_path / TRAIN_LOG) if "iteration" in r]
    assert losses == [r["loss"] for r in read_jsonl(reference_dir / TRAIN_LOG) if "iteration" in r]


def test_nan_loss_stops_with_run_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = resolve_run(RUN, "smoke", 0)
    _fail_at_call(monkeypatch, 3, lambda loss, terms: (loss * math.nan, {**terms, "loss": loss * math.nan}))
    with pytest.raises(RunError, match="non-finite loss at iteration 3.*checkpoint_00000002.pt"):
        engine.train(cfg, tmp_path, Path("unused"))
    assert latest_checkpoint(tmp_path).name == "checkpoint_00000002.pt"
    assert not (tmp_path / FINAL_MODEL).exists()


def test_evaluate_returns_coco_metrics_per_task(finished_run):
    cfg, run_dir, _ = finished_run
    metrics = engine.evaluate(cfg, run_dir, Path("unused"))
    assert set(metrics) == {"bbox", "segm", "eval"}
    for iou_type in ("bbox", "segm"):
        assert set(engine.BOX_STATS) <= set(metrics[iou_type])
    assert metrics["eval"]["images"] == 6 and metrics["eval"]["split"] == "val"
    assert metrics["eval"]["area_thresholds"] == [64.0, 256.0]  # the fixture's info.segbench
    assert metrics["eval"]["area_thresholds_source"] == "dataset info.segbench"
    predictions = json.loads((run_dir / "predictions_val.json").read_text())
    assert set(predictions) == {"bbox", "segm"}
    heads = json.loads((run_dir / "heads.json").read_text())  # the report's Fig. 4 reads this record
    assert heads["run"] == cfg["run"] and {r["branch"] for r in heads["rows"]} == {"box", "mask"}


def test_no_detections_give_zeros(tiny_coco):
    stats = engine.coco_stats(tiny_coco["val"]["annotations"], [], "segm")
    assert all(stats[name] == 0.0 for name in engine.BOX_STATS)


def _perfect_outputs(gt: COCO, keypoints: bool) -> dict[int, dict[str, torch.Tensor]]:
    """torchvision-style outputs that reproduce every non-crowd ground-truth instance exactly."""
    labels = {cid: i for i, cid in enumerate(sorted(gt.getCatIds()), start=1)}
    num_keypoints = len(next(iter(gt.cats.values())).get("keypoints", []))
    outputs = {}
    for image_id in gt.getImgIds():
        anns = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=image_id)) if not a["iscrowd"]]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        height, width = gt.imgs[image_id]["height"], gt.imgs[image_id]["width"]
        masks = torch.zeros(len(anns), 1, height, width, dtype=torch.uint8)
        for i, ann in enumerate(anns):
            masks[i, 0] = torch.from_numpy(gt.annToMask(ann))
        outputs[image_id] = {
            "boxes": boxes,
            "labels": torch.tensor([labels[a["category_id"]] for a in anns]),
            "scores": torch.ones(len(anns)),
            "masks": masks,
        }
        if keypoints:
            points = torch.tensor([a["keypoints"] for a in anns])
            outputs[image_id]["keypoints"] = points.reshape(len(anns), num_keypoints, 3)
    return outputs


def _pycocotools_ap(gt: COCO, records: list[dict], iou_type: str) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(records), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


def _round_trip(gt_file: Path, iou_types: list[str], keypoints: bool) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
    category_ids = sorted(gt.getCatIds())
    records: dict[str, list[dict]] = {t: [] for t in iou_types}
    for image_id, output in _perfect_outputs(gt, keypoints).items():
        for iou_type, recs in engine.coco_records(image_id, output, category_ids, iou_types).items():
            records[iou_type].extend(recs)
    records = json.loads(json.dumps(records))  # what predictions_<split>.json holds
    return {t: _pycocotools_ap(gt, records[t], t) for t in iou_types}


def test_results_conversion_round_trips_to_ap_one(tmp_path):
    paths = write_tiny_coco(tmp_path, keypoints=True)
    ann_file = paths["val"]["annotations"]
    data = json.loads(ann_file.read_text())
    data["annotations"] = [a for a in data["annotations"] if not a["iscrowd"] and a["bbox"][2] >= 1]
    ann_file.write_text(json.dumps(data))
    assert _round_trip(ann_file, ["bbox", "segm", "keypoints"], keypoints=True) == {
        "bbox": 1.0,
        "segm": 1.0,
        "keypoints": 1.0,
    }


def test_results_conversion_round_trips_on_real_coco(shared_data):
    ann_file = shared_data / "coco_val2014_100" / "instances_val2014_100.json"
    if not ann_file.exists():
        pytest.skip(f"{ann_file} absent")
    assert _round_trip(ann_file, ["bbox", "segm"], keypoints=False) == {"bbox": 1.0, "segm": 1.0}


def test_test_dev_results_from_an_image_list_without_annotations(finished_run, tiny_coco, tmp_path):
    cfg, run_dir, _ = finished_run
    info = json.loads(tiny_coco["val"]["annotations"].read_text())
    del info["annotations"]  # like image_info_test-dev2017.json
    (tmp_path / "image_info.json").write_text(json.dumps(info))
    images = CocoInstances(tiny_coco["val"]["images"], tmp_path / "image_info.json", train=False, masks=False)
    results = engine.predict_coco_results(cfg, run_dir, images)
    paths = engine.write_coco_results(results, tmp_path, split="test-dev2017", algorithm="r50c4")
    assert [p.name for p in paths] == [
        "detections_test-dev2017_r50c4-bbox_results.json",
        "detections_test-dev2017_r50c4-segm_results.json",
    ]
    assert json.loads(paths[0].read_text()) == results["bbox"]


def test_paper_schedule_is_rescaled_linearly_and_recorded():
    cfg = resolve_run("r50_fpn", "paper", 0)
    paper = engine.effective_schedule(cfg, replicas=8, gpus=8)
    assert (paper.images_per_batch, paper.images_per_replica, paper.base_lr) == (16, 2, 0.02)
    assert (paper.iterations, paper.lr_decay_at, paper.rescaled) == (160000, [120000], None)
    one = engine.effective_schedule(cfg, replicas=1, gpus=1)
    assert (one.images_per_batch, one.base_lr) == (2, pytest.approx(0.0025))
    assert (one.iterations, one.lr_decay_at) == (1_280_000, [960_000])
    assert one.rescaled["paper"]["images_per_batch"] == 16 and one.rescaled["factor"] == 0.125
    resnext = engine.effective_schedule(resolve_run("x101_fpn", "paper", 0), replicas=8)
    assert (resnext.images_per_replica, resnext.base_lr) == (1, 0.01)
    keypoint = engine.effective_schedule(resolve_run("r50_fpn_person_kp", "paper", 0), replicas=8)
    assert (keypoint.iterations, keypoint.lr_decay_at) == (90000, [60000, 80000])
    assert keypoint.train_scales == [640, 800]
    smoke = engine.effective_schedule(resolve_run(RUN, "smoke", 0), replicas=1)
    assert (smoke.images_per_batch, smoke.iterations, smoke.rescaled) == (2, 4, None)
