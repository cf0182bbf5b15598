"""ISBI 2012 metrics (segbench.metrics.isbi) against hand-built cases, brute force, scikit-image and real data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import adapted_rand_error

from segbench.errors import InputError
from segbench.metrics import isbi, isbi_metrics, pixel_error, rand_error, warping_error
from segbench.metrics.isbi import THRESHOLDS, binarize, f_score, rand_counts_from_labels, warp_order

FOUR = ndimage.generate_binary_structure(2, 1)


# --------------------------------------------------------------------------------------------------
# thresholds and binarisation
# --------------------------------------------------------------------------------------------------
def test_thresholds_accumulate_in_double_precision():
    assert THRESHOLDS == (
        0.0,
        0.1,
        0.2,
        0.30000000000000004,
        0.4,
        0.5,
        0.6,
        0.7,
        0.7999999999999999,
        0.8999999999999999,
    )


def test_binarisation_promotes_float32_to_float64():
    grid = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9], dtype=np.float32)
    t = THRESHOLDS
    # float64 rule: 0.1f = 0.10000000149 > 0.1 -> cell, 0.3f = 0.30000001192 > 0.30000000000000004 -> cell, ...
    assert binarize(grid[:1], t[1]).tolist() == [True]
    assert binarize(grid[2:3], t[3]).tolist() == [True]
    assert binarize(grid[1:2], t[2]).tolist() == [True]
    assert binarize(grid[3:4], t[4]).tolist() == [True]
    assert binarize(grid[4:5], t[6]).tolist() == [True]
    assert binarize(grid[5:6], t[7]).tolist() == [False]  # 0.7f = 0.69999998808 < 0.7
    assert binarize(grid[6:7], t[8]).tolist() == [True]  # 0.8f = 0.80000001192 > 0.7999999999999999
    assert binarize(grid[7:8], t[9]).tolist() == [False]  # 0.9f = 0.89999997616 < 0.8999999999999999
    # NumPy 2 compares a float32 array with a Python float in float32: the grid value is not > itself
    assert not (grid[2:3] > t[3]).any()


def test_values_on_the_grid_are_binarised_per_the_float64_rule_end_to_end():
    labels = np.zeros((12, 12), np.uint8)
    labels[2:10, 2:10] = 255
    pred = np.where(labels > 0, np.float32(0.3), np.float32(0.0)).astype(np.float32)
    curve = isbi_metrics(pred, labels)["per_threshold"]["pixel_error"]
    # cells stay cells up to and including t = 0.30000000000000004 (float32 0.3 promoted is larger);
    # from t = 0.4 nothing is predicted cell: FP = 0 -> P = 1, R = 0, F = 0, error 1.
    assert curve == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_warp_order_key_rounded_to_float32_then_stable_column_scan():
    t = THRESHOLDS[3]  # 0.30000000000000004
    pred = np.zeros((3, 3), np.float32)
    pred[0, 0] = np.float32(0.1)  # |0.1f - t| = 0.19999999851 in float64 -> 0.2f
    pred[1, 2] = np.float32(0.5)  # |0.5 - t| = 0.19999999999999996 in float64 -> 0.2f
    pred[2, 1] = np.float32(1.0)  # 0.7 -> first
    mismatch = np.zeros((3, 3), bool)
    mismatch[0, 0] = mismatch[1, 2] = mismatch[2, 1] = True
    ys, xs = warp_order(pred, mismatch, t)
    # float32 keys tie, so the column scan decides: (0, 0) before (1, 2) although its float64 key is smaller
    assert list(zip(ys.tolist(), xs.tolist(), strict=True)) == [(2, 1), (0, 0), (1, 2)]


# --------------------------------------------------------------------------------------------------
# pixel error
# --------------------------------------------------------------------------------------------------
def test_f_score_conventions():
    assert f_score(0, 0, 0) == 1.0  # P := 1 (FP = 0), R := 1 (FN = 0)
    assert f_score(0, 0, 5) == 0.0  # P = 1, R = 0
    assert f_score(0, 3, 0) == 0.0  # P = 0, R = 1
    assert f_score(0, 3, 5) == 0.0  # P + R = 0 -> F := 0
    assert f_score(6, 2, 4) == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_pixel_error_hand_case():
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[:, 1:3, 1:3] = 255  # 4 cell pixels per slice, 8 in all
    pred = (labels / 255).astype(np.float32)
    pred[0, 1, 1] = 0.0  # FN 1
    pred[1, 0, 0] = 1.0  # FP 1
    pred[1, 0, 1] = 1.0  # FP 2
    # summed over slices: TP = 7, FP = 2, FN = 1 -> P = 7/9, R = 7/8
    p, r = 7 / 9, 7 / 8
    res = pixel_error(pred, labels)
    assert res["error"] == pytest.approx(1 - 2 * p * r / (p + r), abs=1e-15)
    assert res["best_threshold"] == 0.0 and len(res["per_threshold"]) == 10


# --------------------------------------------------------------------------------------------------
# Rand error
# --------------------------------------------------------------------------------------------------
def _brute_rand(gt_lab: np.ndarray, pred_lab: np.ndarray, form: str) -> tuple[int, int, int]:
    """Direct pair counting over the GT-cell pixels; predicted membrane pixels are singletons."""
    g = gt_lab.ravel()
    p = pred_lab.ravel().astype(np.int64)
    fg = g > 0
    g, p = g[fg], p[fg]
    p = np.where(p == 0, -1 - np.arange(p.size), p)  # each predicted-membrane pixel its own segment
    same_g = g[:, None] == g[None, :]
    same_p = p[:, None] == p[None, :]
    if form == "pairs":  # unordered pairs of distinct pixels
        keep = np.triu(np.ones_like(same_g), k=1)
    else:  # ordered pairs, a pixel with itself included (the N^2 form)
        keep = np.ones_like(same_g)
    tp = int((same_g & same_p & keep).sum())
    return tp, int((same_p & keep).sum()) - tp, int((same_g & keep).sum()) - tp


@pytest.mark.parametrize("form", ["n2", "pairs"])
def test_rand_counts_match_direct_pair_counting_on_random_label_images(form):
    rng = np.random.default_rng(3)
    for _ in range(15):
        shape = tuple(rng.integers(3, 12, size=2))
        gt = rng.integers(0, 5, size=shape)
        pred = rng.integers(0, 6, size=shape)
        assert rand_counts_from_labels(gt, pred, form) == _brute_rand(gt, pred, form)


def _rand_error_from_counts(tp, fp, fn):
    return 1.0 - f_score(tp, fp, fn)


def test_rand_pairs_form_matches_skimage_where_the_differences_vanish():
    # skimage treats predicted label 0 as an ordinary segment and uses pair counts: with no predicted
    # membrane inside GT cells the pair form is the same quantity (F is symmetric, so its swapped
    # precision/recall, scikit-image issue #6485, does not matter)
    rng = np.random.default_rng(4)
    for _ in range(20):
        gt = rng.integers(0, 4, size=(20, 20))
        pred = rng.integers(1, 5, size=(20, 20))
        pred[gt == 0] = rng.integers(0, 5, size=int((gt == 0).sum()))  # 0 only on GT membrane
        are, _, _ = adapted_rand_error(gt, pred, ignore_labels=(0,))
        assert _rand_error_from_counts(*rand_counts_from_labels(gt, pred, "pairs")) == pytest.approx(
            are, abs=1e-12
        )


def test_rand_pairs_form_matches_skimage_with_singletons_made_explicit():
    rng = np.random.default_rng(5)
    for _ in range(20):
        gt = rng.integers(0, 4, size=(16, 16))
        pred = rng.integers(0, 4, size=(16, 16))
        explicit = pred.copy()
        inside = (pred == 0) & (gt > 0)
        explicit[inside] = 100 + np.arange(int(inside.sum()))  # each its own segment
        are, _, _ = adapted_rand_error(gt, explicit, ignore_labels=(0,))
        assert _rand_error_from_counts(*rand_counts_from_labels(gt, pred, "pairs")) == pytest.approx(
            are, abs=1e-12
        )


@pytest.mark.parametrize("form", ["n2", "pairs"])
def test_rand_error_pipeline_uses_4_connected_components(form):
    rng = np.random.default_rng(6)
    gt = ndimage.gaussian_filter(rng.random((32, 32)), 1.0) > 0.5
    pr = ndimage.gaussian_filter(rng.random((32, 32)), 1.0) > 0.5
    labels = (gt * 255).astype(np.uint8)
    pred = pr.astype(np.float32)  # binary: the same binarisation at every threshold
    res = rand_error(pred, labels, form=form)
    expected = _rand_error_from_counts(
        *_brute_rand(ndimage.label(gt, FOUR)[0], ndimage.label(pr, FOUR)[0], form)
    )
    assert res["per_threshold"] == pytest.approx([expected] * 10, abs=1e-12)
    assert res["error"] == pytest.approx(expected, abs=1e-12)


def test_rand_forms_differ_slightly_on_realistic_slices():
    rng = np.random.default_rng(7)
    gt = ndimage.gaussian_filter(rng.random((128, 128)), 3) > 0.48
    pred = ndimage.gaussian_filter(gt.astype(np.float32), 1.5)
    labels = (gt * 255).astype(np.uint8)
    n2, pairs = rand_error(pred, labels, form="n2")["error"], rand_error(pred, labels, form="pairs")["error"]
    assert n2 != pairs and abs(n2 - pairs) < 1e-2


# --------------------------------------------------------------------------------------------------
# warping error: one hand-built case per class (binary predictions: every threshold sees the same target)
# --------------------------------------------------------------------------------------------------
def _warp_case(gt: np.ndarray, pred: np.ndarray) -> dict:
    labels = (gt > 0).astype(np.uint8) * 255
    res = isbi_metrics(pred.astype(np.float32), labels)
    classic = warping_error(pred.astype(np.float32), labels, form="classic")
    return {"res": res, "classes": res["mismatch_classes"], "classic": classic["error"], "pixels": gt.size}


def _only(classes: dict, **expected: int) -> bool:
    return classes == {k: expected.get(k, 0) for k in classes}


def test_warping_split():
    # one 5 x 7 object (rows 2..6, columns 2..8); the prediction cuts it with membrane column 5.
    # The cut pixels flip top-down in the column scan: each is a boundary pixel with one cell run around it
    # (simple); the last one, row 6, would leave cell neighbours on its left and right only (T4 = 2): it
    # stays. In the warped source it is a cell pixel with U = {0, k}; removing it leaves labels
    # {0, left part, right part} around it: 3 > 2 -> split. One split pixel.
    gt = np.zeros((10, 11), np.uint8)
    gt[2:7, 2:9] = 1
    pred = gt.astype(np.float32)
    pred[2:7, 5] = 0
    c = _warp_case(gt, pred)
    assert _only(c["classes"], split=1)
    assert c["res"]["split_pixels"] == 1 and c["res"]["merge_pixels"] == 0
    assert c["res"]["warping_error"] == 1 / 110 and c["classic"] == 1 / 110
    assert c["res"]["per_threshold"]["warping_error"] == [1 / 110] * 10


def test_warping_merge():
    # two objects (columns 2..4 and 6..8, rows 2..6) with membrane column 5 between them; the prediction
    # fills the column. Every column pixel touches both objects (T4 = 2): none is simple, all 5 stay.
    # Each has membrane (column 5 above/below or row 1/7) and both objects around it: |U| = 3 -> merge.
    gt = np.zeros((10, 11), np.uint8)
    gt[2:7, 2:5] = 1
    gt[2:7, 6:9] = 1
    pred = gt.astype(np.float32)
    pred[2:7, 5] = 1
    c = _warp_case(gt, pred)
    assert _only(c["classes"], merge=5)
    assert c["res"]["merge_pixels"] == 5 and c["res"]["warping_error"] == 5 / 110


def test_warping_hole_addition():
    # a filled 7 x 7 object; the prediction puts a one-pixel hole at its centre. Removing it would leave
    # no membrane around it (T8 = 0): not simple. Cell pixel, U = {k} -> hole addition.
    gt = np.zeros((9, 9), np.uint8)
    gt[1:8, 1:8] = 1
    pred = gt.astype(np.float32)
    pred[4, 4] = 0
    c = _warp_case(gt, pred)
    assert _only(c["classes"], hole_addition=1)
    assert c["res"]["warping_error"] == 0.0 and c["classic"] == 1 / 81


def test_warping_hole_addition_by_closing_a_ring():
    # a ring with a one-pixel gap at (2, 4); the prediction closes it. Adding the gap pixel joins cell
    # neighbours W and E that are not 4-connected around it (T4 = 2): not simple. Membrane pixel with
    # U = {0, ring} (|U| = 2) -> hole addition.
    gt = np.zeros((9, 9), np.uint8)
    gt[2:7, 2:7] = 1
    gt[3:6, 3:6] = 0
    gt[2, 4] = 0
    pred = gt.astype(np.float32)
    pred[2, 4] = 1
    c = _warp_case(gt, pred)
    assert _only(c["classes"], hole_addition=1)
    assert c["res"]["warping_error"] == 0.0


def test_warping_hole_deletion():
    # a 7 x 7 object with a one-pixel hole; the prediction fills it. Adding it leaves no membrane around it
    # (T8 = 0): not simple. Membrane pixel, U = {k} -> hole deletion.
    gt = np.zeros((9, 9), np.uint8)
    gt[1:8, 1:8] = 1
    gt[4, 4] = 0
    pred = gt.astype(np.float32)
    pred[4, 4] = 1
    c = _warp_case(gt, pred)
    assert _only(c["classes"], hole_deletion=1)
    assert c["res"]["warping_error"] == 0.0 and c["classic"] == 1 / 81


def test_warping_hole_deletion_by_opening_a_ring():
    # a closed ring; the prediction opens it at (2, 4). Removing it leaves W and E unconnected around it
    # (T4 = 2): not simple. Cell pixel with U = {0, ring}; removing it and relabelling leaves {0, ring}
    # (the ring stays connected the other way round): 2 labels -> hole deletion, not a split.
    gt = np.zeros((9, 9), np.uint8)
    gt[2:7, 2:7] = 1
    gt[3:6, 3:6] = 0
    pred = gt.astype(np.float32)
    pred[2, 4] = 0
    c = _warp_case(gt, pred)
    assert _only(c["classes"], hole_deletion=1)


def test_warping_object_addition():
    # no object in the GT; the prediction adds a 2 x 2 object. No added pixel has a cell 4-neighbour in the
    # (unchanged) source (T4 = 0): none is simple, all 4 stay, each with U = {0} -> object addition.
    gt = np.zeros((9, 9), np.uint8)
    pred = np.zeros((9, 9), np.float32)
    pred[3:5, 3:5] = 1
    c = _warp_case(gt, pred)
    assert _only(c["classes"], object_addition=4)
    assert c["res"]["warping_error"] == 0.0 and c["classic"] == 4 / 81


def test_warping_object_deletion():
    # a 3 x 3 object (rows/columns 3..5) that the prediction misses. In the column scan (3,3), (4,3), (5,3),
    # (3,4), (4,4), (5,4), (3,5), (4,5) are each simple when their turn comes (one 4-connected run of cell
    # neighbours, one run of membrane); the last, (5,5), is then isolated (T4 = 0) and stays: U = {0},
    # cell -> object deletion, 1 pixel.
    gt = np.zeros((9, 9), np.uint8)
    gt[3:6, 3:6] = 1
    pred = np.zeros((9, 9), np.float32)
    c = _warp_case(gt, pred)
    assert _only(c["classes"], object_deletion=1)
    assert c["classic"] == 1 / 81


def test_outside_the_image_counts_as_membrane():
    # an all-cell slice; the prediction marks one pixel on the top edge and one in the corner as membrane.
    # With the canvas border as membrane both are simple boundary pixels and warp away: no error at all.
    gt = np.ones((9, 9), np.uint8)
    pred = np.ones((9, 9), np.float32)
    pred[0, 4] = 0
    pred[8, 0] = 0
    assert warping_error(pred, gt * 255, form="classic")["error"] == 0.0
    # the same pixel inside the image is a hole (T8 = 0) and stays
    pred[4, 4] = 0
    assert warping_error(pred, gt * 255, form="classic")["error"] == 1 / 81


# --------------------------------------------------------------------------------------------------
# randomized properties
# --------------------------------------------------------------------------------------------------
def _random_case(rng, shape=(2, 40, 40)):
    gt = np.stack([ndimage.gaussian_filter(rng.random(shape[1:]), 2.0) for _ in range(shape[0])]) > 0.5
    noise = rng.normal(0, 0.25, size=shape)
    pred = np.clip(np.stack([ndimage.gaussian_filter(g.astype(float), 1.0) for g in gt]) + noise, 0, 1)
    return (gt * 255).astype(np.uint8), pred.astype(np.float32)


def test_perfect_prediction_scores_zero():
    rng = np.random.default_rng(8)
    labels, _ = _random_case(rng)
    res = isbi_metrics((labels / 255).astype(np.float32), labels)
    assert res["warping_error"] == res["rand_error"] == res["pixel_error"] == 0.0
    assert all(v == 0.0 for m in res["per_threshold"].values() for v in m)
    res = isbi_metrics((labels / 255).astype(np.float32), labels, rand_form="pairs", warping_form="classic")
    assert res["warping_error"] == res["rand_error"] == 0.0


def test_random_properties():
    rng = np.random.default_rng(9)
    for _ in range(4):
        labels, pred = _random_case(rng)
        res = isbi_metrics(pred, labels)
        classic = warping_error(pred, labels, form="classic")
        for m in ("warping_error", "rand_error", "pixel_error"):
            curve = res["per_threshold"][m]
            assert len(curve) == 10 and all(0.0 <= v <= 1.0 for v in curve)
            assert res[m] == min(curve)
            assert res["best_threshold"][m] == THRESHOLDS[curve.index(min(curve))]
        assert all(
            s <= c
            for s, c in zip(res["per_threshold"]["warping_error"], classic["per_threshold"], strict=True)
        )
        assert res["warping_error"] <= classic["error"]
        assert res["slices"] == 2 and res["pixels"] == labels.size


def test_each_metric_reports_its_own_best_threshold():
    # one slice where the pixel error prefers a low threshold but the warping error a high one: a thin
    # membrane line the prediction only marks weakly (0.35) and a broad cell border predicted at 0.25.
    labels = np.full((1, 20, 20), 255, np.uint8)
    labels[0, :, 10] = 0  # a membrane line splitting two cells
    pred = np.ones((1, 20, 20), np.float32)
    pred[0, :, 10] = 0.35  # weak membrane: merged unless t >= 0.35
    pred[0, 2:18, 2:5] = 0.25  # low cell values: lost as cells once t >= 0.25
    res = isbi_metrics(pred, labels)
    assert res["best_threshold"]["warping_error"] >= 0.4  # the line must be membrane: no merge
    assert res["best_threshold"]["pixel_error"] < res["best_threshold"]["warping_error"]


def test_2d_input_is_one_slice():
    labels = np.zeros((16, 16), np.uint8)
    labels[3:12, 3:12] = 255
    res = isbi_metrics((labels / 255).astype(np.float32), labels)
    assert res["slices"] == 1 and res["pixels"] == 256


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_input_error():
    labels = np.zeros((2, 8, 8), np.uint8)
    good = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(InputError, match="shape"):
        isbi_metrics(good[:1], labels)
    with pytest.raises(InputError, match="0/255"):
        isbi_metrics(good, labels + np.uint8(128))
    with pytest.raises(InputError, match="8-bit"):
        isbi_metrics(np.full((2, 8, 8), 200, np.uint8), labels)
    bad = good.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        isbi_metrics(bad, labels)
    with pytest.raises(InputError, match="empty"):
        isbi_metrics(np.zeros((0, 8, 8), np.float32), np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        isbi_metrics(good - 0.5, labels)
    with pytest.raises(ValueError):
        isbi_metrics(good, labels, rand_form="nope")
    # {0, 1} labels are accepted and mean the same as {0, 255}
    lab01 = np.zeros((2, 8, 8), np.uint8)
    lab01[:, 2:6, 2:6] = 1
    pred = lab01.astype(np.float32)
    assert isbi_metrics(pred, lab01) == isbi_metrics(pred, lab01 * np.uint8(255))


def test_membrane_probability_conversion():
    labels = np.zeros((1, 10, 10), np.uint8)
    labels[0, 2:8, 2:8] = 255
    p_membrane = (1 - labels / 255).astype(np.float32)
    res = isbi.isbi_metrics(p_membrane, labels, membrane_prob=True)
    assert res["warping_error"] == res["rand_error"] == res["pixel_error"] == 0.0


# --------------------------------------------------------------------------------------------------
# real data: the shared ISBI 2012 training stack with a blurred-label prediction
# --------------------------------------------------------------------------------------------------
@pytest.mark.shared_data
def test_isbi2012_blurred_labels_are_stable(shared_data):
    tifffile = pytest.importorskip("tifffile")
    path = shared_data / "isbi2012" / "train-labels.tif"
    if not path.is_file():
        pytest.skip("shared isbi2012 labels absent")
    labels = tifffile.imread(path)
    pred = np.stack([ndimage.gaussian_filter(s.astype(np.float32) / 255, 2.0) for s in labels]).astype(
        np.float32
    )
    res = isbi_metrics(pred, labels)
    assert res["slices"] == 30 and res["pixels"] == 30 * 512 * 512
    # values computed with this implementation (scipy 1.17, numpy 2.4); counts may move by a few pixels
    # if gaussian_filter rounds differently elsewhere
    assert res["split_pixels"] == pytest.approx(552, abs=10)
    assert res["merge_pixels"] == pytest.approx(411, abs=10)
    assert res["warping_error"] == pytest.approx(963 / 7864320, abs=3e-6)
    assert res["rand_error"] == pytest.approx(0.017327127711125767, rel=1e-3)
    assert res["pixel_error"] == pytest.approx(0.007406189545958508, rel=1e-3)
    assert res["best_threshold"] == {"warping_error": 0.5, "rand_error": 0.5, "pixel_error": 0.5}
    assert res["per_threshold"]["warping_error"][0] == pytest.approx(0.03033002217610677, rel=1e-3)
    assert res["per_threshold"]["rand_error"][3] == pytest.approx(0.5449714526486595, rel=1e-3)
    # u-net's leaderboard scale for orientation: 0.000353 is about 2,776 pixels of 7,864,320
    assert res["warping_error"] < 0.000353
