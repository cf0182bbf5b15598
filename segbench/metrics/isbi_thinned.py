"""The ISBI 2012 challenge's current metrics: V_rand (thinned) and V_info (thinned).

Arganda-Carreras et al., "Crowdsourcing the creation of image segmentation algorithms for connectomics",
Front. Neuroanat. 9:142 (2015), section 2.3 (eqs. 3 and 6), as the organisers' Fiji script "Segmentation
evaluation after border thinning" computes them (``RandError.getMaximalVRandAfterThinning(0.0, 1.0, 0.1,
true)``, ``VariationOfInformation.getMaximalVInfoAfterThinning(0.0, 1.0, 0.1)`` of Fiji's
Trainable_Segmentation). The challenge server ranks by V_rand since 2015 and calls the three metrics of
U-Net Table 1 "deprecated". Both are scores (higher is better, 1 = perfect); written here from the
paper's equations and the published watershed algorithm (the Java code is GPL), following the script's
choices where they matter:

Per threshold t and slice:

1. Ground truth T: 4-connected components of the cell pixels (label > 0); GT membrane pixels are excluded
   ("foreground-restricted").
2. Proposal S: 4-connected components of ``pred > t`` (pixel promoted to float64, as in
   :func:`segbench.metrics.isbi.binarize`), then its membrane thinned by the flooding watershed of
   Vincent and Soille (1991) on the binary image, over the whole slice (:func:`thin_boundaries`): the
   membrane pixels 4-adjacent to a segment are queued in x-major order (x outer, y inner, the Java
   image's order), the queue floods the membrane in 4-connectivity (neighbours x-1, y-1, x+1, y+1), and
   a pixel reached from two segments stays a one-pixel dam (label 0). Dams inside the GT foreground
   count as one-pixel segments each. A slice whose proposal has no segment at all is one segment (the
   flooding's new-minimum step).
3. Contingency n_ij = pixels of GT segment i and proposal segment j inside the GT foreground;
   a_i = sum_j n_ij, b_j = sum_i n_ij, N = sum n_ij; p = n / N.

Per slice:

    V_rand_split = sum p_ij^2 / sum a_i^2          (1 unless the proposal splits GT segments)
    V_rand_merge = sum p_ij^2 / sum b_j^2          (1 unless it merges them)
    V_rand       = sum p_ij^2 / (0.5 sum a_i^2 + 0.5 sum b_j^2)    (eq. 3, alpha = 0.5: their F-score)

    I(S; T)      = H(S) + H(T) - H(S, T),   H(X) = -sum p log p
    V_info_split = I / H(S),  V_info_merge = I / H(T)
    V_info       = I / (0.5 H(S) + 0.5 H(T))                         (eq. 6, alpha = 0.5)

V_info is 0 where a side has one segment (H = 0), as in the script; a part whose denominator is 0 (one
segment: nothing to split or merge) is 1, and a slice without GT foreground scores 1 (the script divides
by zero there; ISBI slices always have cells). A stack's score at t is the **mean over its slices** (the
script's per-slice average), and each score is the maximum of that mean over thresholds 0.0, 0.1, ...,
accumulated in double precision up to 1.0 (the script's ``0.0, 1.0, 0.1``: 11 levels, the last
0.9999999999999999), each with its own best threshold (the first maximum).

``1 - V_rand`` on one slice equals ``skimage.metrics.adapted_rand_error(gt, thinned, ignore_labels=(0,))``
up to its pair counting (n^2 - n); V_info is cross-checked with ``skimage.metrics.variation_of_information``
(tests/test_metrics_thinned.py). The per-slice scores add up over slices, so folds pool by adding their
per-threshold sums and slice counts (:func:`pooled_thinned`): the mean over all their slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

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

#: The two scores (higher is better) and the keys of ``metrics.json``'s ``isbi.thinned`` block besides
#: ``best_threshold`` and ``sums`` (:func:`thinned_record`).
SCORES = ("v_rand", "v_info")
RECORD_KEYS = ("v_rand", "v_rand_split", "v_rand_merge", "v_info", "v_info_split", "v_info_merge")

#: Per threshold, the sums that pool over slices and folds: the number of slices and the sum of each
#: per-slice score.
STAT_FIELDS = ("slices", *RECORD_KEYS)

# Vincent-Soille pixel states; segments are > 0
_DAM, _UNSEEN, _MASK, _QUEUED = 0, -1, -2, -3


@numba.njit(cache=True, nogil=True)
def _flood(segments: np.ndarray) -> np.ndarray:
    """Vincent-Soille flooding of the membrane (label 0) of a 2D label image from its segments (> 0), in
    4-connectivity and x-major order; pixels reached from two segments are dams (0). With at least one
    segment every membrane pixel is reached (a membrane component short of the whole image borders a
    segment), so the flooding's new-minimum step is needed only without any: :func:`thin_boundaries`."""
    h, w = segments.shape
    lab = np.empty((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            lab[y, x] = segments[y, x] if segments[y, x] > 0 else _UNSEEN
    dx = (-1, 0, 1, 0)
    dy = (0, -1, 0, 1)
    queue = np.empty(h * w, np.int64)  # x * h + y; a pixel is queued at most once
    head, tail = 0, 0
    for x in range(w):  # the membrane level: pixels next to a segment start the queue
        for y in range(h):
            if lab[y, x] != _UNSEEN:
                continue
            lab[y, x] = _MASK
            for k in range(4):
                u, v = x + dx[k], y + dy[k]
                if 0 <= u < w and 0 <= v < h and lab[v, u] >= 0:
                    lab[y, x] = _QUEUED
                    queue[tail] = x * h + y
                    tail += 1
                    break
    flag = False  # the last dam was set next to a dam (it may still join a segment)
    while head < tail:
        x, y = queue[head] // h, queue[head] % h
        head += 1
        for k in range(4):
            u, v = x + dx[k], y + dy[k]
            if not (0 <= u < w and 0 <= v < h):
                continue
            q = lab[v, u]
            if q > 0:
                if lab[y, x] == _QUEUED or (lab[y, x] == _DAM and flag):
                    lab[y, x] = q
                elif lab[y, x] > 0 and lab[y, x] != q:
                    lab[y, x] = _DAM
                    flag = False
            elif q == _DAM:
                if lab[y, x] == _QUEUED:
                    lab[y, x] = _DAM
                    flag = True
            elif q == _MASK:
                lab[v, u] = _QUEUED
                queue[tail] = u * h + v
                tail += 1
    return lab


def thin_boundaries(pred_lab: np.ndarray) -> np.ndarray:
    """``pred_lab`` (segments > 0, membrane 0) with its membrane flooded by the segments: int64 labels,
    0 only on the one-pixel dams between segments (module docstring, step 2). Without any segment the
    membrane is the flooding's one new minimum: one segment."""
    lab = np.ascontiguousarray(pred_lab, dtype=np.int64)
    return _flood(lab) if lab.any() else np.ones_like(lab)


def _xlogx(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    return float(np.sum(c * np.log(c)))


def contingency_stats(gt_lab: np.ndarray, thinned: np.ndarray) -> tuple[float, ...]:
    """N, sum n_ij^2, sum a_i^2, sum b_j^2 and the same with x log x of one slice, over the GT foreground
    (``gt_lab > 0``); each dam pixel of ``thinned`` (label 0) there is a segment of its own."""
    mask = gt_lab > 0
    g = gt_lab[mask].astype(np.int64)
    p = thinned[mask].astype(np.int64)
    if g.size == 0:
        return (0.0,) * 7
    dams = p == 0
    if dams.any():
        p[dams] = p.max() + 1 + np.arange(int(dams.sum()))
    pairs = np.unique(g * (int(p.max()) + 1) + p, return_counts=True)[1]
    a, b = np.bincount(g), np.bincount(p)
    sq = [float(np.sum(x.astype(np.float64) ** 2)) for x in (pairs, a, b)]
    return (float(g.size), *sq, _xlogx(pairs), _xlogx(a), _xlogx(b))


def scores_from_stats(stats: Sequence[float]) -> dict[str, float]:
    """The :data:`RECORD_KEYS` of one slice from its :func:`contingency_stats`."""
    n, nij2, a2, b2, nij_log, a_log, b_log = (float(v) for v in stats)
    if n == 0:
        return dict.fromkeys(RECORD_KEYS, 1.0)
    h_st, h_t, h_s = (max(0.0, float(np.log(n)) - v / n) for v in (nij_log, a_log, b_log))
    info = h_s + h_t - h_st

    def part(num: float, den: float) -> float:
        return 1.0 if den <= 0 else float(num / den)  # one segment on a side: nothing to split or merge

    return {
        "v_rand": part(nij2, 0.5 * a2 + 0.5 * b2),
        "v_rand_split": part(nij2, a2),
        "v_rand_merge": part(nij2, b2),
        "v_info": 0.0 if h_s <= 0 or h_t <= 0 else float(info / (0.5 * h_s + 0.5 * h_t)),
        "v_info_split": part(info, h_s),
        "v_info_merge": part(info, h_t),
    }


def slice_stats(gt: np.ndarray, pred: np.ndarray, thresholds=THINNED_THRESHOLDS) -> np.ndarray:
    """(thresholds x :data:`STAT_FIELDS`) of one slice (``slices`` = 1): ``gt`` 2D bool (True = cell),
    ``pred`` 2D float."""
    gt_lab, _ = topology.label4(gt)
    p64 = np.asarray(pred, dtype=np.float64)
    out = np.ones((len(thresholds), len(STAT_FIELDS)))
    for k, t in enumerate(thresholds):
        scores = scores_from_stats(contingency_stats(gt_lab, thin_boundaries(topology.label4(p64 > t)[0])))
        out[k, 1:] = [scores[key] for key in RECORD_KEYS]
    return out


def thinned_results(stats: Any) -> dict[str, Any]:
    """Both scores at their own best threshold (the first maximum of the mean over slices), their split
    and merge parts there, and the mean curves (``per_threshold``), from summed :data:`STAT_FIELDS`."""
    arr = np.asarray(stats, dtype=np.float64)
    means = arr[:, 1:] / arr[:, :1]
    rows = [dict(zip(RECORD_KEYS, (float(v) for v in row), strict=True)) for row in means]
    out: dict[str, Any] = {"thresholds": list(THINNED_THRESHOLDS[: len(rows)]), "slices": int(arr[0, 0])}
    for name in SCORES:
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


def is_current(thinned: dict[str, Any] | None) -> bool:
    """Whether a ``metrics.json``'s ``isbi.thinned`` block is this version's (per-slice means, whose ``sums``
    count slices); one from the earlier pooled version reads as missing (re-run ``segbench evaluate``)."""
    return isinstance(thinned, dict) and isinstance(thinned.get("sums"), dict) and "slices" in thinned["sums"]


def stats_from_sums(sums: dict[str, Any]) -> np.ndarray:
    """The (thresholds x :data:`STAT_FIELDS`) array of a :func:`thinned_record`'s ``sums``."""
    try:
        arr = np.array([sums[field] for field in STAT_FIELDS], dtype=np.float64).T
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"thinned scores: malformed or outdated sums ({type(exc).__name__}: {exc}); re-run segbench "
            "evaluate"
        ) from None
    if arr.ndim != 2 or list(sums.get("thresholds", [])) != list(THINNED_THRESHOLDS[: len(arr)]):
        raise InputError(
            f"thinned scores: sums over thresholds {sums.get('thresholds')} are not "
            f"{list(THINNED_THRESHOLDS)}; re-run segbench evaluate"
        )
    if not np.all(arr[:, 0] > 0):
        raise InputError("thinned scores: sums over no slices; re-run segbench evaluate")
    return arr


def pooled_thinned(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """V_rand and V_info (thinned) of the union of several folds' held-out slices: their ``sums`` (slice
    counts and per-slice score sums) added up, then :func:`thinned_results` (the mean over all slices)."""
    if not parts:
        raise InputError("pooled thinned scores: no folds to pool")
    arrays = [stats_from_sums(p) for p in parts]
    if len({a.shape for a in arrays}) != 1:
        raise InputError(
            "pooled thinned scores: folds disagree on their thresholds; re-evaluate the runs with one "
            "segbench version"
        )
    return thinned_results(sum(arrays))
