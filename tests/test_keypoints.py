"""Keypoint targets (Mask R-CNN section 5: one-hot m x m target per visible keypoint, m = 56) and COCO OKS
evaluation: encoding then decoding returns each keypoint within half a heatmap cell, and perfect
predictions on the synthetic keypoint set give AP 100."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision.models.detection.roi_heads import heatmaps_to_keypoints, keypoints_to_heatmap

from segbench.data import prepare
from segbench.data.registry import dataset_paths
from segbench.metrics.coco import evaluate

HEATMAP = 56  # the paper's keypoint output resolution


def test_keypoint_target_round_trip_within_half_a_cell():
    g = torch.Generator().manual_seed(0)
    # RoIs at least 56 px on a side: decoding upsamples the heatmap to the RoI (a smaller RoI subsamples a
    # one-hot map without antialiasing, which no trained, smooth heatmap looks like).
    rois = torch.tensor([[10.0, 20.0, 90.0, 140.0], [0.0, 0.0, 56.0, 56.0], [33.3, 5.5, 120.1, 80.9]])
    for roi in rois:
        x = roi[0] + (roi[2] - roi[0]) * torch.rand(17, generator=g) * 0.999
        y = roi[1] + (roi[3] - roi[1]) * torch.rand(17, generator=g) * 0.999
        keypoints = torch.stack([x, y, torch.full_like(x, 2.0)], dim=1)[None]
        index, valid = keypoints_to_heatmap(keypoints, roi[None], HEATMAP)
        assert valid.all()
        logits = torch.full((1, 17, HEATMAP * HEATMAP), -10.0)
        logits[0, torch.arange(17), index[0]] = 10.0  # the one-hot target as a confident prediction
        decoded, _ = heatmaps_to_keypoints(logits.view(1, 17, HEATMAP, HEATMAP), roi[None])
        # Decoding (Detectron's rule, in torchvision) upsamples the heatmap to the RoI's size in pixels and
        # returns the centre of the best pixel, so the bound is half a heatmap cell plus half a pixel.
        cell_w = (roi[2] - roi[0]) / HEATMAP
        cell_h = (roi[3] - roi[1]) / HEATMAP
        assert (decoded[0, :, 0] - x).abs().max() <= cell_w / 2 + 0.5 + 1e-3
        assert (decoded[0, :, 1] - y).abs().max() <= cell_h / 2 + 0.5 + 1e-3


def test_invisible_keypoints_get_no_target():
    keypoints = torch.tensor([[[20.0, 20.0, 0.0], [25.0, 25.0, 2.0]]])
    _, valid = keypoints_to_heatmap(keypoints, torch.tensor([[0.0, 0.0, 50.0, 50.0]]), HEATMAP)
    assert valid.tolist() == [[0, 1]]


@pytest.fixture(scope="module")
def keypoint_smoke(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    prepare("keypoints_smoke", root)
    return dataset_paths("keypoints_smoke", root)["val"]["annotations"]


def test_perfect_keypoint_predictions_give_ap_100(keypoint_smoke: Path):
    gt = json.loads(keypoint_smoke.read_text())
    dets = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "keypoints": a["keypoints"],
            "score": 1.0,
        }
        for a in gt["annotations"]
        if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd")
    ]
    assert dets, "the synthetic keypoint set has labelled persons"
    stats = evaluate(keypoint_smoke, dets, "keypoints")
    assert stats["AP"] == pytest.approx(1.0) and stats["AP50"] == pytest.approx(1.0)


def test_displaced_keypoints_lower_oks_ap(keypoint_smoke: Path):
    gt = json.loads(keypoint_smoke.read_text())
    dets = []
    for a in gt["annotations"]:
        if a.get("num_keypoints", 0) > 0:
            kps = list(a["keypoints"])
            for i in range(0, len(kps), 3):
                kps[i] += 6.0  # a shift comparable to a small person's size
            dets.append(
                {"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": kps, "score": 1.0}
            )
    assert evaluate(keypoint_smoke, dets, "keypoints")["AP"] < 0.9
