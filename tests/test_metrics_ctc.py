"""Cell Tracking Challenge SEG (segbench.metrics.ctc) against hand cases and py-ctcmetrics."""

from __future__ import annotations

import numpy as np
import pytest

from segbench.errors import InputError
from segbench.metrics.ctc import foreground_iou, seg_metrics, seg_score


def test_perfect_and_empty_predictions():
    gt = np.zeros((10, 10), np.uint16)
    gt[1:4, 1:4] = 1
    gt[5:9, 5:9] = 7
    assert seg_metrics(gt, gt) == {"seg": 1.0, "iou": 1.0, "objects": 2, "matched": 2}
    # relabelled prediction: the same objects under other ids
    assert seg_score(np.where(gt == 7, 3, np.where(gt == 1, 9, 0)), gt) == 1.0
    empty = np.zeros_like(gt)
    assert seg_metrics(empty, gt) == {"seg": 0.0, "iou": 0.0, "objects": 2, "matched": 0}


def test_match_needs_more_than_half_of_the_reference():
    gt = np.zeros((4, 8), np.int32)
    gt[0, :4] = 1  # |R| = 4
    pred = np.zeros_like(gt)
    pred[0, :2] = 5  # |R n S| = 2 = 0.5 |R|: not > 0.5 |R| -> J = 0
    assert seg_score(pred, gt) == 0.0
    pred[0, 2] = 5  # |R n S| = 3 > 2, |R u S| = 4 -> J = 3/4
    assert seg_score(pred, gt) == 0.75
    pred[1, :4] = 5  # S grows to 7 pixels: |R u S| = 8 -> J = 3/8
    assert seg_score(pred, gt) == 0.375


def test_seg_is_mean_over_reference_objects_and_iou_is_foreground_iou():
    gt = np.zeros((6, 12), np.uint8)
    gt[0:2, 0:2] = 1  # R1, 4 px, predicted exactly -> J = 1
    gt[0:2, 4:6] = 2  # R2, 4 px, missed -> J = 0
    gt[4:6, 8:12] = 3  # R3, 8 px, half-covered by two halves -> no match -> J = 0
    pred = np.zeros_like(gt)
    pred[0:2, 0:2] = 1
    pred[4:6, 8:10] = 2
    pred[4:6, 10:12] = 3
    res = seg_metrics(pred, gt)
    assert res["seg"] == pytest.approx(1 / 3) and res["objects"] == 3 and res["matched"] == 1
    # foreground: |P| = 12, |G| = 16, |P n G| = 12 -> 12 / 16
    assert res["iou"] == foreground_iou(pred, gt) == 0.75


def test_frames_are_labelled_separately_and_binary_predictions_can_be_labelled():
    gt = np.zeros((2, 6, 6), np.uint8)
    gt[0, 0:2, 0:2] = 1
    gt[1, 3:6, 3:6] = 1  # same id in another frame: another reference object
    assert seg_metrics(gt, gt)["objects"] == 2
    binary = (gt > 0).astype(np.uint8)
    binary[0, 4:6, 0:2] = 1  # an extra object in frame 0
    res = seg_metrics(binary, gt, label_pred=True)
    assert res["seg"] == 1.0 and res["objects"] == 2


def test_bad_inputs():
    gt = np.zeros((4, 4), np.uint8)
    with pytest.raises(InputError, match="shape"):
        seg_metrics(np.zeros((4, 5), np.uint8), gt)
    with pytest.raises(InputError, match="non-integer"):
        seg_metrics(np.full((4, 4), 0.5), gt)
    with pytest.raises(InputError, match="empty"):
        seg_metrics(np.zeros((0, 4)), np.zeros((0, 4)))
    with pytest.raises(InputError, match="negative"):
        seg_metrics(np.full((4, 4), -1), gt)


def _random_instances(rng, shape, n):
    lab = np.zeros(shape, np.uint16)
    for k in range(1, n + 1):
        y, x = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        h, w = rng.integers(3, 14, size=2)
        lab[y : y + h, x : x + w] = k
    return lab


def test_seg_matches_py_ctcmetrics_on_random_instance_maps(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    representations = pytest.importorskip("ctc_metrics.utils.representations")
    from ctc_metrics.metrics import seg as ctc_seg

    rng = np.random.default_rng(11)
    gts, preds = [], []
    for _ in range(6):
        gt = _random_instances(rng, (48, 48), int(rng.integers(3, 12)))
        pred = np.roll(gt, tuple(rng.integers(-3, 4, size=2)), axis=(0, 1)).astype(np.uint16)
        perm = np.concatenate([[0], rng.permutation(np.arange(1, 200))[: int(pred.max())]]).astype(np.uint16)
        pred = perm[pred]  # other ids
        pred[rng.random(pred.shape) < 0.05] = 0  # speckle
        pred[_random_instances(rng, (48, 48), 2) > 0] = 250  # an over-merged blob
        gt[0, 0] = 0
        pred[0, 0] = 0  # both have background
        gts.append(gt)
        preds.append(pred)
    labels_ref, ious = [], []
    for z, (gt, pred) in enumerate(zip(gts, preds, strict=True)):
        ref_path, comp_path = tmp_path / f"ref{z}.tif", tmp_path / f"comp{z}.tif"
        tifffile.imwrite(ref_path, gt)
        tifffile.imwrite(comp_path, pred.astype(np.uint32))  # ctc adds an offset in place: no overflow
        refs, _, _, _, iou = representations.match(str(ref_path), str(comp_path))
        labels_ref.append(refs)
        ious.append(iou)
    expected = ctc_seg(labels_ref, ious)
    ours = seg_metrics(np.stack(preds), np.stack(gts))
    assert 0.2 < expected < 0.95
    assert ours["seg"] == pytest.approx(expected, abs=1e-12)
    assert ours["objects"] == sum(len(r) for r in labels_ref)
