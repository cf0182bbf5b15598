"""V_rand (thinned) and V_info (thinned): hand-computed cases, the watershed border thinning and its order,
the mean over slices, pooling over folds, and the cross-checks with scikit-image's adapted Rand error and
variation of information."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error, variation_of_information

from segbench.data.synthetic.em import draw_stack
from segbench.errors import InputError
from segbench.metrics import topology
from segbench.metrics.isbi_thinned import (
    RECORD_KEYS,
    THINNED_THRESHOLDS,
    contingency_stats,
    pooled_thinned,
    scores_from_stats,
    thin_boundaries,
    thinned_metrics,
    thinned_record,
    thinned_results,
    thinned_stats,
)

# Two GT cells (columns 0-1 and 3-4, 6 pixels each) and a membrane column between them.
GT = np.array([[255, 255, 0, 255, 255]] * 3, dtype=np.uint8)


def test_a_perfect_prediction_scores_one() -> None:
    r = thinned_metrics(GT / 255.0, GT)
    assert r["v_rand"] == r["v_info"] == 1.0
    assert len(THINNED_THRESHOLDS) == 11 and THINNED_THRESHOLDS[-1] == 0.9999999999999999


def test_a_merge_by_hand() -> None:
    # everything cell: one segment over both GT cells. sum n^2 = 72, sum a^2 = 72, sum b^2 = 144;
    # I = H(S) + H(T) - H(S, T) = 0 + ln 2 - ln 2 = 0.
    s = scores_from_stats(contingency_stats(topology.label4(GT > 0)[0], np.ones(GT.shape, np.int64)))
    assert s["v_rand"] == pytest.approx(72 / (0.5 * 72 + 0.5 * 144))  # 2/3
    assert (s["v_rand_split"], s["v_rand_merge"]) == (1.0, 0.5)
    assert s["v_info"] == 0.0 and s["v_info_split"] == 1.0 and s["v_info_merge"] == 0.0


def test_a_split_by_hand_with_the_predicted_membrane_thinned_into_dams() -> None:
    pred = (GT > 0).astype(np.float32)
    pred[1, 0:2] = 0.0  # a membrane across the left cell splits it (rows 0 and 2)
    pred_lab, n = topology.label4(pred > 0.5)
    assert n == 3
    thinned = thin_boundaries(pred_lab)
    # both pixels of the cut touch the segment above and the one below: dams (0), one segment each
    assert thinned[1, 0] == thinned[1, 1] == 0
    # inside the GT foreground: left cell = 2 (row 0) + 2 (row 2) + 1 + 1 (dams), right cell = 6
    # sum n^2 = sum b^2 = 4 + 4 + 1 + 1 + 36 = 46, sum a^2 = 72
    r = thinned_metrics(pred, GT)
    assert r["v_rand"] == pytest.approx(46 / 59) and r["v_rand_split"] == pytest.approx(46 / 72)
    assert r["v_rand_merge"] == 1.0
    h_s = -sum(p * math.log(p) for p in (2 / 12, 2 / 12, 1 / 12, 1 / 12, 6 / 12))
    assert r["v_info"] == pytest.approx(math.log(2) / (0.5 * h_s + 0.5 * math.log(2)))
    assert r["v_info_split"] == pytest.approx(math.log(2) / h_s) and r["v_info_merge"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("row", "thinned"),
    [
        ([1, 0, 1], [1, 0, 2]),  # one pixel between two segments: a dam
        ([1, 0, 0, 1], [1, 1, 0, 2]),  # two: the first queued (x-major) joins its segment, the other is a dam
        ([1, 0, 0, 0, 1], [1, 1, 0, 2, 2]),  # three: each side floods one, the middle is a dam
        ([1, 0, 0], [1, 1, 1]),  # membrane next to one segment only: flooded by it
        ([0, 0, 0], [1, 1, 1]),  # no segment: the membrane is one (the flooding's new minimum)
    ],
)
def test_the_watershed_thinning_by_hand(row: list[int], thinned: list[int]) -> None:
    lab = topology.label4(np.array([row]) > 0)[0]
    assert thin_boundaries(lab).tolist() == [thinned]


def test_the_flooding_order_is_x_major_with_4_neighbours() -> None:
    """A 2 x 2 membrane block between a segment on the left and one below: the pixels queue column by
    column (x outer, y inner) and each takes the first labelled neighbour in the order x-1, y-1, x+1, y+1
    unless another segment touches it."""
    seg = np.array([[1, 0, 0], [1, 0, 0], [0, 2, 2]])
    # queue: (y0,x1) <- 1, (y1,x1) <- 1 then 2 below: dam; (y1,x2) <- 2; (y0,x2) <- from (y1,x2)? it is
    # reached from (y0,x1) = 1 first (x-1) and from (y1,x2) = 2 (y+1): a dam.
    assert thin_boundaries(seg).tolist() == [[1, 1, 0], [1, 0, 2], [0, 2, 2]]


def test_an_all_membrane_proposal_is_one_segment() -> None:
    assert np.array_equal(thin_boundaries(np.zeros((3, 5), np.int32)), np.ones((3, 5), np.int64))
    r = thinned_metrics(np.zeros(GT.shape, np.float32), GT)
    assert r["v_rand"] == pytest.approx(2 / 3) and r["v_info"] == 0.0  # one segment: H(S) = 0


def _em_case() -> tuple[np.ndarray, np.ndarray]:
    _, labels = draw_stack({"slices": 2, "height": 96, "width": 96, "cell_spacing": 20.0}, 0, "volume")
    rng = np.random.default_rng(0)
    from scipy import ndimage

    soft = ndimage.gaussian_filter((labels > 0).astype(np.float64), (0, 1.2, 1.2))
    return np.clip(soft + rng.normal(0, 0.15, labels.shape), 0, 1).astype(np.float32), labels


def test_cross_check_with_skimage_on_a_thinned_slice() -> None:
    pred, labels = _em_case()
    gt_lab = topology.label4(labels[0] > 0)[0]
    thinned = thin_boundaries(topology.label4(pred[0].astype(np.float64) > 0.5)[0])
    dams = thinned == 0  # each a segment of its own (contingency_stats); numbered so for scikit-image
    thinned[dams] = thinned.max() + 1 + np.arange(int(dams.sum()))
    n, nij2, a2, b2, *_ = contingency_stats(gt_lab, thinned)
    # skimage counts pairs (n^2 - n); with the same contingency table its error follows exactly
    are, _, _ = adapted_rand_error(gt_lab, thinned, ignore_labels=(0,))
    assert are == pytest.approx(1.0 - 2 * (nij2 - n) / ((a2 - n) + (b2 - n)), abs=1e-12)
    s = scores_from_stats(contingency_stats(gt_lab, thinned))
    assert 1.0 - s["v_rand"] == pytest.approx(are, abs=2e-3)  # n^2 vs pairs: close on 96 x 96
    # skimage's conditional entropies (bits): H(S | T), H(T | S) = H(S) - I, H(T) - I
    h_s_given_t, h_t_given_s = variation_of_information(gt_lab, thinned, ignore_labels=(0,)) * math.log(2)
    mask = gt_lab > 0

    def entropy(lab: np.ndarray) -> float:
        p = np.bincount(lab[mask])[np.bincount(lab[mask]) > 0] / mask.sum()
        return float(-np.sum(p * np.log(p)))

    info_s, info_t = entropy(thinned) - h_s_given_t, entropy(gt_lab) - h_t_given_s
    assert info_s == pytest.approx(info_t, abs=1e-9)
    assert s["v_info"] == pytest.approx(info_s / (0.5 * entropy(thinned) + 0.5 * entropy(gt_lab)), abs=1e-9)


def test_a_stack_scores_the_mean_over_its_slices_at_the_best_threshold() -> None:
    """The script's per-slice average: the mean of the slices' scores per threshold, then the maximum."""
    pred, labels = _em_case()
    whole = thinned_stats(pred, labels)
    first, second = thinned_stats(pred[:1], labels[:1]), thinned_stats(pred[1:], labels[1:])
    assert np.allclose(whole, first + second) and whole[0, 0] == 2
    r = thinned_metrics(pred, labels)
    for name in ("v_rand", "v_info"):
        mean = [
            (a + b) / 2
            for a, b in zip(
                thinned_results(first)["per_threshold"][name],
                thinned_results(second)["per_threshold"][name],
                strict=True,
            )
        ]
        assert r["per_threshold"][name] == pytest.approx(mean, abs=1e-15)
        assert r[name] == max(r["per_threshold"][name])
    assert 0.0 < r["v_rand"] < 1.0 and 0.0 < r["v_info"] < 1.0


def test_the_record_keeps_the_scores_and_folds_pool_from_their_sums() -> None:
    """metrics.json's isbi.thinned: the scores of thinned_metrics, and sums whose pooling over two folds
    gives the scores of the two folds' slices together."""
    pred, labels = _em_case()
    record = thinned_record(thinned_stats(pred, labels))
    direct = thinned_metrics(pred, labels)
    assert {k: record[k] for k in RECORD_KEYS} == {k: direct[k] for k in RECORD_KEYS}
    assert record["best_threshold"] == direct["best_threshold"]
    assert record["sums"]["thresholds"] == list(THINNED_THRESHOLDS) and len(record["sums"]["v_rand"]) == 11
    folds = [thinned_record(thinned_stats(pred[a:b], labels[a:b]))["sums"] for a, b in ((0, 1), (1, 2))]
    pooled = pooled_thinned(json.loads(json.dumps(folds)))  # as read back from metrics.json
    for name in ("v_rand", "v_info"):
        assert pooled[name] == pytest.approx(direct[name], rel=1e-12, abs=1e-12)
        assert pooled["best_threshold"][name] == direct["best_threshold"][name]


def test_malformed_or_mismatched_sums_are_one_line() -> None:
    pred, labels = _em_case()
    sums = thinned_record(thinned_stats(pred, labels))["sums"]
    with pytest.raises(InputError, match="no folds to pool"):
        pooled_thinned([])
    with pytest.raises(InputError, match="malformed or outdated sums"):
        pooled_thinned([{k: v for k, v in sums.items() if k != "v_info"}])
    with pytest.raises(InputError, match="outdated sums"):  # a record of the pooled-contingency version
        pooled_thinned([{"thresholds": sums["thresholds"], "n": [1.0] * 11, "nij2": [1.0] * 11}])
    with pytest.raises(InputError, match="are not"):
        pooled_thinned([{**sums, "thresholds": [0.5] * 11}])


def test_bad_input_is_one_line() -> None:
    with pytest.raises(InputError, match="labels must be exactly 0/255"):
        thinned_metrics(GT / 255.0, GT // 2)


def test_segbench_metrics_isbi_thinned_prints_both_scores(tmp_path, capsys) -> None:
    import tifffile

    from segbench.cli import main

    pred, labels = _em_case()
    tifffile.imwrite(tmp_path / "pred.tif", pred)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    args = ["metrics", "isbi", "--pred", str(tmp_path / "pred.tif"), "--labels", str(tmp_path / "labels.tif")]
    assert main([*args, "--thinned", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["thinned"]["v_rand"] == thinned_metrics(pred, labels)["v_rand"]
    assert main([*args, "--thinned"]) == 0
    assert "v_rand (thinned) " in capsys.readouterr().out
