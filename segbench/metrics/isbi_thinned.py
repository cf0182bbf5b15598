"""The ISBI 2012 challenge's current metrics: V_rand (thinned) and V_info (thinned).

Arganda-Carreras et al., "Crowdsourcing the creation of image segmentation algorithms for connectomics",
Front. Neuroanat. 9:142 (2015), section 2.3 (eqs. 3 and 6), and the organisers' Fiji script
"Segmentation evaluation after border thinning" (``RandError.getMaximalVRandAfterThinning(0.0, 1.0, 0.1,
true)``, ``VariationOfInformation.getMaximalVInfoAfterThinning(0.0, 1.0, 0.1)``). The challenge server
ranks by V_rand since 2015 and calls the three metrics of U-Net Table 1 "deprecated". Both are scores
(higher is better, 1 = perfect); re-implemented from the paper's equations (the Java code is GPL).

Per threshold t and slice:

1. Ground truth T: 4-connected components of the cell pixels (label > 0); GT membrane pixels are excluded
   ("foreground-restricted").
2. Proposal S: 4-connected components of ``pred > t`` (pixel promoted to float64, as in
   :func:`segbench.metrics.isbi.binarize`); its membrane (label 0) is then thinned away: every membrane
   pixel inside the GT foreground takes the label of an adjacent segment, by repeated one-pixel growth
   of all segments (3 x 3 maximum filter, the larger label wins a tie) until none is left. A proposal
   without any segment is one segment. (This is the border thinning of the Python evaluation code that
   accompanies the paper's equations; agreement with the Fiji script's output is not verified here.)
3. Contingency n_ij = pixels of GT segment i and proposal segment j inside the GT foreground;
   a_i = sum_j n_ij, b_j = sum_i n_ij, N = sum n_ij; p = n / N.

With slices pooled (segments of different slices are different segments; all sums run over the stack):

    V_rand_split = sum p_ij^2 / sum a_i^2 (in p)   (1 unless the proposal splits GT segments)
    V_rand_merge = sum p_ij^2 / sum b_j^2 (in p)   (1 unless it merges them)
    V_rand       = sum p_ij^2 / (0.5 sum a_i^2 + 0.5 sum b_j^2)    (eq. 3, alpha = 0.5: their F-score)

    I(S; T)      = H(S) + H(T) - H(S, T),   H(X) = -sum p log p
    V_info_split = I / H(S),  V_info_merge = I / H(T)
    V_info       = I / (0.5 H(S) + 0.5 H(T))                         (eq. 6, alpha = 0.5)

Each score is the maximum over thresholds 0.0, 0.1, ..., accumulated in double precision up to 1.0 (the
script's ``0.0, 1.0, 0.1``: 11 levels, the last 0.9999999999999999), each with its own best threshold.
``1 - V_rand`` on one slice equals ``skimage.metrics.adapted_rand_error(gt, thinned, ignore_labels=(0,))``;
V_info is cross-checked with ``skimage.metrics.variation_of_information`` (tests/test_metrics_thinned.py).
The sufficient statistics (sum n^2, sum n log n, ...) add up over slices, so folds pool like the three
old errors (:mod:`segbench.metrics.isbi_pooled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from segbench.errors import InputError
from segbench.metrics import topology
from segbench.metrics.isbi import validate_isbi_inputs


def _thresholds() -> tuple[float, ...]:
    ts, t = [], 0.0
    while t <= 1.0:  # the script's loop from 0.0 to 1.0 in steps of 0.1, accumulated in float64
        ts.append(t)
        t += 0.1
    return tuple(ts)


#: 0.0, 0.1, ..., 0.8999999999999999, 0.9999999999999999 (11 levels).
THINNED_THRESHOLDS: tuple[float, ...] = _thresholds()

#: Per threshold, the sums that pool over slices: N, sum n_ij^2, sum a_i^2, sum b_j^2, and the same
#: with x log x in place of x^2 (natural log).
STAT_FIELDS = ("n", "nij2", "a2", "b2", "nij_log", "a_log", "b_log")

#: The two scores (higher is better) and the keys of ``metrics.json``'s ``isbi.thinned`` block besides
#: ``best_threshold`` and ``sums`` (:func:`thinned_record`).
SCORES = ("v_rand", "v_info")
RECORD_KEYS = ("v_rand", "v_rand_split", "v_rand_merge", "v_info", "v_info_split", "v_info_merge")


def thin_boundaries(pred_lab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``pred_lab`` with its label-0 pixels inside ``mask`` given to adjacent segments by repeated one-pixel
    growth (3 x 3 maximum filter); a label image without any segment becomes one segment (label 1)."""
    lab = np.asarray(pred_lab).copy()
    if not lab.any():
        return np.ones_like(lab)
    while np.any(lab[mask] == 0):
        zeros = lab == 0
        lab[zeros] = ndimage.maximum_filter(lab, size=3, mode="constant", cval=0)[zeros]
    return lab


def _xlogx(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    return float(np.sum(c * np.log(c)))


def contingency_stats(gt_lab: np.ndarray, pred_lab: np.ndarray) -> np.ndarray:
    """The :data:`STAT_FIELDS` of one slice from GT segments (0 = membrane, excluded) and proposal segments
    (already thinned: no label 0 inside the GT foreground)."""
    mask = gt_lab > 0
    g = gt_lab[mask].astype(np.int64)
    p = pred_lab[mask].astype(np.int64)
    if g.size == 0:
        return np.zeros(len(STAT_FIELDS))
    pairs = np.unique(g * (int(p.max()) + 1) + p, return_counts=True)[1]
    a = np.bincount(g)
    b = np.bincount(p)
    sq = [float(np.sum(x.astype(np.float64) ** 2)) for x in (pairs, a, b)]
    return np.array([float(g.size), *sq, _xlogx(pairs), _xlogx(a), _xlogx(b)])


def slice_stats(gt: np.ndarray, pred: np.ndarray, thresholds=THINNED_THRESHOLDS) -> np.ndarray:
    """(thresholds x :data:`STAT_FIELDS`) of one slice: ``gt`` 2D bool (True = cell), ``pred`` 2D float."""
    gt_lab, _ = topology.label4(gt)
    p64 = np.asarray(pred, dtype=np.float64)
    out = np.zeros((len(thresholds), len(STAT_FIELDS)))
    for k, t in enumerate(thresholds):
        pred_lab, _ = topology.label4(p64 > t)
        out[k] = contingency_stats(gt_lab, thin_boundaries(pred_lab, gt))
    return out


def scores_from_stats(stats: Any) -> dict[str, float]:
    """V_rand and V_info (with their split and merge parts) from one row of pooled :data:`STAT_FIELDS`."""
    n, nij2, a2, b2, nij_log, a_log, b_log = (float(v) for v in stats)
    if n == 0:
        return dict.fromkeys(
            ("v_rand", "v_rand_split", "v_rand_merge", "v_info", "v_info_split", "v_info_merge"), 1.0
        )
    h = {k: np.log(n) - v / n for k, v in (("st", nij_log), ("t", a_log), ("s", b_log))}
    info = h["s"] + h["t"] - h["st"]

    def ratio(num: float, den: float) -> float:
        return 1.0 if den <= 0 else float(num / den)  # one segment on a side: nothing to split or merge

    return {
        "v_rand": ratio(nij2, 0.5 * a2 + 0.5 * b2),
        "v_rand_split": ratio(nij2, a2),
        "v_rand_merge": ratio(nij2, b2),
        "v_info": ratio(info, 0.5 * h["s"] + 0.5 * h["t"]),
        "v_info_split": ratio(info, h["s"]),
        "v_info_merge": ratio(info, h["t"]),
    }


def thinned_results(stats: Any) -> dict[str, Any]:
    """Both scores at their own best threshold (first maximum) from pooled per-threshold statistics."""
    rows = [scores_from_stats(row) for row in np.asarray(stats, dtype=np.float64)]
    out: dict[str, Any] = {"thresholds": list(THINNED_THRESHOLDS[: len(rows)])}
    for name in ("v_rand", "v_info"):
        curve = [r[name] for r in rows]
        k = int(np.argmax(curve))
        out[name] = curve[k]
        out[f"{name}_split"] = rows[k][f"{name}_split"]
        out[f"{name}_merge"] = rows[k][f"{name}_merge"]
        out.setdefault("best_threshold", {})[name] = THINNED_THRESHOLDS[k]
        out.setdefault("per_threshold", {})[name] = curve
    return out


def thinned_stats(pred: Any, labels: Any) -> np.ndarray:
    """Per-threshold :data:`STAT_FIELDS` summed over the slices of a stack (JSON: ``.tolist()``)."""
    p, g = validate_isbi_inputs(pred, labels)
    return sum(slice_stats(g[z], p[z]) for z in range(p.shape[0]))


def thinned_metrics(pred: Any, labels: Any) -> dict[str, Any]:
    """V_rand (thinned) and V_info (thinned) of a prediction stack (float in [0, 1], 1 = cell) against
    binary labels (255 or 1 = cell, 0 = membrane): the scores, their split/merge parts at the best
    threshold, ``best_threshold`` and ``per_threshold`` per score. Higher is better."""
    return thinned_results(thinned_stats(pred, labels))


def thinned_record(stats: Any) -> dict[str, Any]:
    """``metrics.json``'s ``isbi.thinned``: :data:`RECORD_KEYS` and ``best_threshold`` of
    :func:`thinned_results`, and ``sums``, the per-threshold :data:`STAT_FIELDS` (``thresholds`` and one
    list per field) that pool over folds (:func:`pooled_thinned`)."""
    arr = np.asarray(stats, dtype=np.float64)
    res = thinned_results(arr)
    return {
        **{k: res[k] for k in RECORD_KEYS},
        "best_threshold": res["best_threshold"],
        "sums": {
            "thresholds": res["thresholds"],
            **{field: arr[:, i].tolist() for i, field in enumerate(STAT_FIELDS)},
        },
    }


def stats_from_sums(sums: dict[str, Any]) -> np.ndarray:
    """The (thresholds x :data:`STAT_FIELDS`) array of a :func:`thinned_record`'s ``sums``."""
    try:
        arr = np.array([sums[field] for field in STAT_FIELDS], dtype=np.float64).T
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"thinned scores: malformed sums ({type(exc).__name__}: {exc}); re-run segbench evaluate"
        ) from None
    if arr.ndim != 2 or list(sums.get("thresholds", [])) != list(THINNED_THRESHOLDS[: len(arr)]):
        raise InputError(
            f"thinned scores: sums over thresholds {sums.get('thresholds')} are not "
            f"{list(THINNED_THRESHOLDS)}; re-run segbench evaluate"
        )
    return arr


def pooled_thinned(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """V_rand and V_info (thinned) of the union of several folds' held-out slices: their ``sums`` added up
    (segments of different slices are different segments, so the statistics add; module docstring), then
    :func:`thinned_results`."""
    if not parts:
        raise InputError("pooled thinned scores: no folds to pool")
    arrays = [stats_from_sums(p) for p in parts]
    if len({a.shape for a in arrays}) != 1:
        raise InputError(
            "pooled thinned scores: folds disagree on their thresholds; re-evaluate the runs with one "
            "segbench version"
        )
    return thinned_results(sum(arrays))
