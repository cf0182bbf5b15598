"""COCO evaluation wrappers (segbench.metrics.coco): pycocotools reference values, faster-coco-eval parity."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from segbench.errors import InputError
from segbench.metrics.coco import DET_STATS, KPT_STATS, evaluate

README_VALUES = {  # shared/data/coco_val2014_100/README.md, pycocotools 2.0.11, rounded to 4 places
    "bbox": [0.5046, 0.6970, 0.5730, 0.5856, 0.5194, 0.5014, 0.3868, 0.5937, 0.5954, 0.6398, 0.5664, 0.5643],
    "segm": [0.3195, 0.5623, 0.2989, 0.3874, 0.3102, 0.3269, 0.2682, 0.4154, 0.4168, 0.4694, 0.3768, 0.3815],
}
RESULTS = {
    "bbox": "instances_val2014_fakebbox100_results.json",
    "segm": "instances_val2014_fakesegm100_results.json",
}


@pytest.fixture(scope="module")
def coco100(shared_data):
    root = shared_data / "coco_val2014_100"
    if not (root / "instances_val2014_100.json").is_file():
        pytest.skip("shared coco_val2014_100 absent")
    return root


@pytest.mark.shared_data
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_pycocotools_reproduces_readme_values_and_faster_matches(coco100, iou_type):
    gt = coco100 / "instances_val2014_100.json"
    dt = coco100 / RESULTS[iou_type]
    ref = evaluate(gt, dt, iou_type)
    assert list(ref) == list(DET_STATS)
    assert [round(v, 4) for v in ref.values()] == README_VALUES[iou_type]
    fast = evaluate(gt, dt, iou_type, backend="faster")
    assert list(fast) == list(DET_STATS)
    for k in DET_STATS:
        assert abs(fast[k] - ref[k]) <= 1e-12, k


@pytest.mark.shared_data
def test_loaded_objects_equal_paths_and_are_not_modified(coco100):
    gt_path = coco100 / "instances_val2014_100.json"
    dt_path = coco100 / RESULTS["bbox"]
    gt = json.loads(gt_path.read_text())
    dt = json.loads(dt_path.read_text())
    gt_copy, dt_copy = copy.deepcopy(gt), copy.deepcopy(dt)
    assert evaluate(gt, dt, "bbox") == evaluate(gt_path, dt_path, "bbox")
    assert gt == gt_copy and dt == dt_copy


# --------------------------------------------------------------------------------------------------
# synthetic data (no shared data needed)
# --------------------------------------------------------------------------------------------------
def _toy_gt():
    images = [{"id": i, "width": 200, "height": 200, "file_name": f"{i}.jpg"} for i in (1, 2)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "area": 2000, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [100, 100, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [30, 50, 120, 110], "area": 13200, "iscrowd": 0},
    ]
    for a in anns:
        x, y, w, h = a["bbox"]
        a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }


def _toy_dt(gt, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        bbox = [float(v + jitter * rng.normal()) for v in a["bbox"]]
        out.append(
            {
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "bbox": bbox,
                "score": float(rng.uniform(0.5, 1.0)),
            }
        )
    out.append(
        {"image_id": 2, "category_id": 2, "bbox": [0.0, 0.0, 30.0, 30.0], "score": 0.3}
    )  # a false positive
    return out


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_perfect_detections_and_empty_detections(backend):
    gt = _toy_gt()
    stats = evaluate(gt, _toy_dt(gt), "bbox", backend=backend)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR100"] == pytest.approx(1.0)
    assert stats["APs"] == pytest.approx(1.0)  # the 20 x 20 box is small
    zeros = evaluate(gt, [], "bbox", backend=backend)
    assert zeros == {k: 0.0 for k in DET_STATS}


def test_backends_agree_on_jittered_detections():
    gt = _toy_gt()
    for seed in range(3):
        dt = _toy_dt(gt, jitter=6.0, seed=seed)
        a, b = evaluate(gt, dt, "bbox"), evaluate(gt, dt, "bbox", backend="faster")
        assert all(abs(a[k] - b[k]) <= 1e-12 for k in DET_STATS)


def _kpt_gt():
    rng = np.random.default_rng(2)
    anns = []
    for i in range(1, 4):
        kps = []
        for _ in range(17):
            kps += [float(rng.uniform(20, 180)), float(rng.uniform(20, 180)), 2]
        anns.append(
            {
                "id": i,
                "image_id": 1 + i % 2,
                "category_id": 1,
                "keypoints": kps,
                "num_keypoints": 17,
                "bbox": [10, 10, 180, 180],
                "area": 150.0 * 150.0,
                "iscrowd": 0,
            }
        )
    return {
        "images": [{"id": 1, "width": 200, "height": 200}, {"id": 2, "width": 200, "height": 200}],
        "annotations": anns,
        "categories": [
            {"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}
        ],
    }


def test_keypoints_stats_by_name_and_backends_agree():
    gt = _kpt_gt()
    perfect = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
        for a in gt["annotations"]
    ]
    stats = evaluate(gt, perfect, "keypoints")
    assert list(stats) == list(KPT_STATS)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    noisy = copy.deepcopy(perfect)
    for d in noisy:
        d["keypoints"] = [
            v + float(rng.normal(0, 6)) if k % 3 != 2 else v for k, v in enumerate(d["keypoints"])
        ]
        d["score"] = float(rng.uniform(0.1, 1))
    a, b = evaluate(gt, noisy, "keypoints"), evaluate(gt, noisy, "keypoints", backend="faster")
    assert 0.0 < a["AP"] < 1.0
    assert all(abs(a[k] - b[k]) <= 1e-12 for k in KPT_STATS)
    assert evaluate(gt, [], "keypoints") == {k: 0.0 for k in KPT_STATS}


def test_malformed_inputs_raise_input_error_naming_the_file(tmp_path):
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_toy_gt()))
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image_id": 1,')
    with pytest.raises(InputError, match="bad.json"):
        evaluate(gt_path, bad, "bbox")
    with pytest.raises(InputError, match="bad.json"):
        evaluate(bad, gt_path, "bbox")
    not_gt = tmp_path / "list.json"
    not_gt.write_text("[]")
    with pytest.raises(InputError, match="list.json"):
        evaluate(not_gt, [], "bbox")
    with pytest.raises(InputError, match="gt.json"):
        evaluate(gt_path, gt_path, "bbox")  # a ground-truth file passed as detections
    wrong_img = tmp_path / "dt.json"
    wrong_img.write_text(json.dumps([{"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}]))
    with pytest.raises(InputError, match="image_id 99"):
        evaluate(gt_path, wrong_img, "bbox")
    with pytest.raises(InputError, match="segmentation"):
        evaluate(gt_path, _toy_dt(_toy_gt()), "segm")
    with pytest.raises(InputError, match="not found"):
        evaluate(tmp_path / "missing.json", [], "bbox")
    with pytest.raises(InputError, match="iou_type"):
        evaluate(gt_path, [], "mask")


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_area_thresholds(backend):
    gt = _toy_gt()
    dt = _toy_dt(gt, jitter=6.0, seed=1)
    default = evaluate(gt, dt, "bbox", backend=backend)
    assert evaluate(gt, dt, "bbox", backend=backend, area_thresholds=[32**2, 96**2]) == default
    # GT areas 400, 2000, 13200 px^2: with [500, 1000] the 2000 px^2 box leaves "medium" (now empty: -1)
    # for "large", which then holds two GT boxes instead of one
    moved = evaluate(gt, dt, "bbox", backend=backend, area_thresholds=[500, 1000])
    assert moved["AP"] == default["AP"] and moved["APl"] != default["APl"] and moved["APm"] == -1.0
    assert evaluate(gt, dt, "bbox", backend="pycocotools", area_thresholds=[500, 1000]) == pytest.approx(
        moved, abs=1e-12
    )
    with pytest.raises(InputError, match="area_thresholds"):
        evaluate(gt, dt, "bbox", backend=backend, area_thresholds=[100, 10])


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_details_give_per_category_ap_curves_and_class_counts(backend):
    gt = _toy_gt()
    dts = [d for d in _toy_dt(gt) if d["category_id"] == 1]  # class b never detected
    dts.append(
        {"image_id": 1, "category_id": 1, "bbox": [100.0, 100.0, 20.0, 20.0], "score": 0.9}
    )  # b labelled a
    details: dict = {}
    stats = evaluate(gt, dts, "bbox", backend=backend, details=details)
    assert details["category_names"] == {"1": "a", "2": "b"}
    assert details["per_category_AP"]["2"] == 0.0 and 0 < details["per_category_AP"]["1"] <= 1
    assert stats["AP"] == pytest.approx(sum(details["per_category_AP"].values()) / 2)
    assert len(details["recall"]) == len(details["precision_iou50"]) == 101
    assert details["ground_truth_per_category"] == {"1": 2, "2": 1}
    assert details["detections_per_category"] == {"1": 3, "2": 0}  # the confusion shows in the counts
