"""ISBI 2012 EM segmentation metrics as the organisers defined them for the 2015 leaderboard (U-Net Table 1).

Re-implemented from the written description in ``shared/reference/isbi_metrics.md`` (the organisers' Java
code is GPL and was not consulted). In short:

* Inputs: ground truth 255 (or 1) = cell, 0 = membrane; prediction float in [0, 1], 1 = cell. Predictions
  are held as float32 (as the organisers' ImageJ code does) and promoted to float64 before comparison.
* Binarisation at t: ``value > t`` (strict) -> cell, with ``t`` from :data:`THRESHOLDS` (0.0, then 0.1
  accumulated nine times in float64: 0.1, 0.2, 0.30000000000000004, ..., 0.8999999999999999). One
  threshold for the whole stack; each metric reports its own best threshold (the first minimum).
* Objects: 4-connected components of cell pixels per 2D slice; membrane is label 0.
* Precision := 1 where FP = 0, recall := 1 where FN = 0, F = 2PR / (P + R), F := 0 where P + R = 0.

Pixel error = 1 - max_t F of the cell pixels (TP, FP, FN summed over slices).

Foreground-restricted Rand error = 1 - max_t F, with per slice (i: GT component, 0 = GT membrane, excluded;
j: predicted component, 0 = predicted membrane, whose pixels inside GT cells are singletons)
``TP = sum n_ij^2 + sum n_i0``, precision denominator ``sum_j b_j^2 + sum n_i0``, recall denominator
``sum_i a_i^2`` ("n2" form, the default), or the same with C(n, 2) pair counts ("pairs" form, in which the
singletons contribute nothing); TP, FP, FN summed over slices.

Minimum splits-and-mergers warping error = min_t (split + merge pixels) / (width * height * slices), after a
simple-point warp of the GT towards the binarised prediction (see :mod:`segbench.metrics.topology`); the
"classic" form (Jain et al. 2010) counts every mismatch left after the warp.

Slices are scored on a thread pool (the numba kernels release the GIL); ``SEGBENCH_METRIC_THREADS`` sets
its size (default: the CPUs available, at most 8).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numba
import numpy as np

from segbench.errors import InputError, warn
from segbench.metrics import topology

RAND_FORMS = ("n2", "pairs")
WARPING_FORMS = ("splits_mergers", "classic")
METRICS = ("warping_error", "rand_error", "pixel_error")


def _organiser_thresholds() -> tuple[float, ...]:
    ts, t = [], 0.0
    for _ in range(10):
        ts.append(t)
        t += 0.1  # accumulated in double precision, as the organisers' loop does
    return tuple(ts)


#: The 10 thresholds: 0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7, 0.7999999999999999,
#: 0.8999999999999999.
THRESHOLDS: tuple[float, ...] = _organiser_thresholds()


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------
def _as_stack(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.size == 0:
        raise InputError(
            f"{name}: empty stack (shape {arr.shape}); pass a non-empty 2D image or 3D (Z, Y, X) stack"
        )
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim != 3:
        raise InputError(
            f"{name}: {arr.ndim}-D array of shape {arr.shape}; expected a 2D image or a 3D "
            "(Z, Y, X) stack of single-channel slices"
        )
    return arr


def validate_labels(labels: Any, name: str = "labels") -> np.ndarray:
    """Binary ground truth (2D or 3D, values within {0, 255} or within {0, 1}) -> 3D bool, True = cell."""
    lab = _as_stack(np.asarray(labels), name)
    if lab.dtype.kind not in "biuf":
        raise InputError(f"{name}: unsupported dtype {lab.dtype}; expected binary labels 0/255 (or 0/1)")
    if lab.dtype.kind == "u" and lab.dtype.itemsize == 1:
        values = np.flatnonzero(np.bincount(lab.ravel(), minlength=256))
    elif lab.dtype.kind == "b":
        values = np.array([0, 1])
    else:
        if lab.dtype.kind == "f" and np.isnan(lab).any():
            raise InputError(f"{name}: contains NaN; expected binary labels 0/255 (or 0/1)")
        values = np.unique(lab)
    vals = {float(v) for v in values}
    if not (vals <= {0.0, 255.0} or vals <= {0.0, 1.0}):
        shown = ", ".join(f"{v:g}" for v in sorted(vals)[:6]) + (", ..." if len(vals) > 6 else "")
        raise InputError(
            f"{name}: labels must be exactly 0/255 (or 0/1) with 255 = cell, 0 = membrane, "
            f"found values {{{shown}}}; pass the binary ISBI label stack (train-labels.tif)"
        )
    return lab > 0


def validate_prediction(pred: Any, name: str = "prediction", *, membrane_prob: bool = False) -> np.ndarray:
    """Prediction (2D or 3D, values in [0, 1]) -> 3D float32 with 1 = cell.

    ``membrane_prob``: the values are P(membrane); they are converted to the organisers' convention as
    ``1 - p`` (in float32).
    """
    arr = _as_stack(np.asarray(pred), name)
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"{name}: unsupported dtype {arr.dtype}; expected float32 values in [0, 1] (1 = cell)"
        )
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise InputError(
            f"{name}: contains NaN values; fix the model output (values must be in [0, 1], 1 = cell)"
        )
    if arr.dtype.kind != "b":
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > 1:
            if lo >= 0 and hi <= 255 and (arr.dtype.kind in "iu" or np.all(arr == np.round(arr))):
                raise InputError(
                    f"{name}: values range {lo:g}..{hi:g}, outside [0, 1]: this looks like an 8-bit "
                    "0..255 map; divide by 255 and save as float32 in [0, 1] (1 = cell)"
                )
            raise InputError(
                f"{name}: values range {lo:g}..{hi:g}, outside [0, 1]; predictions must be "
                "probabilities in [0, 1] with 1 = cell (use --membrane-prob for P(membrane))"
            )
    out = arr.astype(np.float32)
    if membrane_prob:
        out = np.float32(1.0) - out
    return out


def validate_isbi_inputs(
    pred: Any,
    labels: Any,
    *,
    pred_name: str = "prediction",
    labels_name: str = "labels",
    membrane_prob: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert (prediction, labels) -> (3D float32 prediction, 3D bool GT); InputError if bad.
    A 2D image is one slice, so a 2D prediction matches a 1-slice label stack."""
    p = _as_stack(np.asarray(pred), pred_name)
    g = _as_stack(np.asarray(labels), labels_name)
    if p.shape != g.shape:
        raise InputError(
            f"{pred_name}: shape {p.shape} differs from {labels_name} shape {g.shape}; prediction and "
            "labels must be the same (Z, Y, X) stack"
        )
    return (validate_prediction(p, pred_name, membrane_prob=membrane_prob), validate_labels(g, labels_name))


def binarize(pred: np.ndarray, t: float) -> np.ndarray:
    """``pred > t`` with the pixel promoted to float64 first (not NumPy 2's float32 comparison)."""
    return np.asarray(pred).astype(np.float64, copy=False) > float(t)


# --------------------------------------------------------------------------------------------------
# Rand error sums
# --------------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _rand_sums_kernel(gt_lab, pred_lab):
    """[sum_{i,j>=1} n_ij^2, sum_{i,j>=1} C(n_ij,2), sum_i n_i0, sum_i a_i^2, sum_i C(a_i,2),
    sum_{j>=1} b_j^2, sum_{j>=1} C(b_j,2)] over GT-cell pixels (gt_lab > 0). Labels: non-negative
    integers, compact enough to index arrays (0 = membrane)."""
    g = gt_lab.ravel()
    p = pred_lab.ravel()
    n_gt = 0
    n_pred = 0
    for k in range(g.shape[0]):
        if g[k] > n_gt:
            n_gt = g[k]
        if p[k] > n_pred:
            n_pred = p[k]
    a = np.zeros(n_gt + 2, dtype=np.int64)
    b = np.zeros(n_pred + 1, dtype=np.int64)
    n0 = 0
    for k in range(g.shape[0]):
        i = g[k]
        if i > 0:
            a[i + 1] += 1
            j = p[k]
            if j > 0:
                b[j] += 1
            else:
                n0 += 1
    # counting sort of the predicted labels by GT label
    for i in range(1, n_gt + 2):
        a[i] += a[i - 1]
    start = a.copy()
    grouped = np.empty(a[n_gt + 1], dtype=np.int64)
    for k in range(g.shape[0]):
        i = g[k]
        if i > 0:
            grouped[start[i]] = p[k]
            start[i] += 1
    cnt = np.zeros(n_pred + 1, dtype=np.int64)
    touched = np.empty(n_pred + 1, dtype=np.int64)
    s_ij2 = 0
    s_ijp = 0
    s_a2 = 0
    s_ap = 0
    for i in range(1, n_gt + 1):
        lo = a[i]
        hi = a[i + 1]
        ai = hi - lo
        s_a2 += ai * ai
        s_ap += ai * (ai - 1) // 2
        nt = 0
        for k in range(lo, hi):
            j = grouped[k]
            if j > 0:
                if cnt[j] == 0:
                    touched[nt] = j
                    nt += 1
                cnt[j] += 1
        for t in range(nt):
            c = cnt[touched[t]]
            s_ij2 += c * c
            s_ijp += c * (c - 1) // 2
            cnt[touched[t]] = 0
    s_b2 = 0
    s_bp = 0
    for j in range(1, n_pred + 1):
        s_b2 += b[j] * b[j]
        s_bp += b[j] * (b[j] - 1) // 2
    out = np.empty(7, dtype=np.int64)  # the fields of RandSums, in order
    out[0] = s_ij2
    out[1] = s_ijp
    out[2] = n0
    out[3] = s_a2
    out[4] = s_ap
    out[5] = s_b2
    out[6] = s_bp
    return out


def rand_counts_from_labels(
    gt_lab: np.ndarray, pred_lab: np.ndarray, form: str = "n2"
) -> tuple[int, int, int]:
    """(TP, FP, FN) of the foreground-restricted Rand score of one slice, from label images.

    ``gt_lab``: GT segments (0 = membrane, excluded); ``pred_lab``: predicted segments (0 = membrane, each
    such pixel inside a GT segment is a singleton). Labels need not be connected or consecutive.
    """
    _check_form(form, RAND_FORMS, "rand_form")
    g = _compact(np.asarray(gt_lab))
    p = _compact(np.asarray(pred_lab))
    if g.shape != p.shape:
        raise ValueError(f"label images differ in shape: {g.shape} vs {p.shape}")
    s = _rand_sums_kernel(g, p)
    return _rand_tp_fp_fn(s, form)


def _compact(lab: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..n (0 stays 0) as int64, so kernel arrays stay small."""
    if lab.size and lab.min() < 0:
        raise ValueError("label images must be non-negative (0 = membrane)")
    uniq, inv = np.unique(lab, return_inverse=True)
    if uniq.size and uniq[0] != 0:
        inv = inv + 1
    return inv.reshape(lab.shape).astype(np.int64)


class RandSums(NamedTuple):
    """The sums of one slice's contingency table that both Rand forms need (``_rand_sums_kernel`` returns
    them as an int64 vector in this field order; vectors of slices add up field by field)."""

    s_ij2: int  # sum n_ij^2 over GT segments i > 0, predicted segments j > 0
    s_ijp: int  # sum C(n_ij, 2)
    n0: int  # pixels of GT segments on predicted membrane (singletons)
    s_a2: int  # sum a_i^2 (GT segment sizes)
    s_ap: int  # sum C(a_i, 2)
    s_b2: int  # sum b_j^2 (predicted segment sizes inside GT segments)
    s_bp: int  # sum C(b_j, 2)


N_RAND_SUMS = len(RandSums._fields)


def _rand_tp_fp_fn(s: np.ndarray, form: str) -> tuple[int, int, int]:
    r = RandSums(*(int(v) for v in s))
    if form == "n2":
        tp, pden, rden = r.s_ij2 + r.n0, r.s_b2 + r.n0, r.s_a2
    else:
        tp, pden, rden = r.s_ijp, r.s_bp, r.s_ap
    return tp, pden - tp, rden - tp


def f_score(tp: float, fp: float, fn: float) -> float:
    """F from counts, with precision := 1 where FP = 0, recall := 1 where FN = 0, F := 0 where P + R = 0."""
    precision = 1.0 if fp == 0 else tp / (tp + fp)
    recall = 1.0 if fn == 0 else tp / (tp + fn)
    return 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)


def warp_order(pred: np.ndarray, mismatch: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the ``mismatch`` pixels of one slice in flip order (:func:`topology.flip_order`): scanned
    column by column, stably sorted by ``|pred - t|`` descending, the key computed in float64 and rounded
    to float32."""
    key = np.abs(np.asarray(pred, dtype=np.float64) - float(t)).astype(np.float32)
    return topology.flip_order(mismatch, key)


# --------------------------------------------------------------------------------------------------
# The per-slice engine (all thresholds of one slice)
# --------------------------------------------------------------------------------------------------
def _slice_counts(
    gt: np.ndarray, pred: np.ndarray, thresholds: Sequence[float], want: frozenset[str]
) -> dict:
    """Per-threshold counts for one slice. ``gt``: 2D bool; ``pred``: 2D float32."""
    nt = len(thresholds)
    out: dict[str, np.ndarray] = {}
    p64 = pred.astype(np.float64)
    if "pixel" in want:
        out["pixel"] = np.zeros((nt, 3), dtype=np.int64)
    if "rand" in want:
        out["rand"] = np.zeros((nt, N_RAND_SUMS), dtype=np.int64)
        gt_lab, _ = topology.label4(gt)
    if "warping" in want:
        out["warping"] = np.zeros((nt, topology.N_CLASSES), dtype=np.int64)
        out["mismatch"] = np.zeros((nt, 2), dtype=np.int64)  # before, after the warp
    for k, t in enumerate(thresholds):
        tgt = p64 > t
        if "pixel" in want:
            tp = np.count_nonzero(gt & tgt)
            out["pixel"][k] = (tp, np.count_nonzero(tgt) - tp, np.count_nonzero(gt) - tp)
        if "rand" in want:
            pred_lab, _ = topology.label4(tgt)
            out["rand"][k] = _rand_sums_kernel(gt_lab, pred_lab)
        if "warping" in want:
            ys, xs = warp_order(p64, gt != tgt, t)
            outcome = topology.warp_and_classify(gt, ys, xs)
            out["mismatch"][k] = (outcome.mismatches_before, outcome.mismatches_after)
            out["warping"][k] = outcome.classes
    return out


def _check_form(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _threads(n_slices: int) -> int:
    env = os.environ.get("SEGBENCH_METRIC_THREADS")
    if env:
        return max(1, int(env))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_slices, 8))


def stack_slice_counts(pred: np.ndarray, gt: np.ndarray, want: frozenset[str]) -> list[dict[str, np.ndarray]]:
    """Per-threshold counts of each slice of a validated stack, in stack order (slices run on a thread
    pool; the kernels release the GIL)."""
    n = pred.shape[0]
    workers = _threads(n)
    if workers == 1:
        return [_slice_counts(gt[z], pred[z], THRESHOLDS, want) for z in range(n)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda z: _slice_counts(gt[z], pred[z], THRESHOLDS, want), range(n)))


def sum_slice_counts(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The stack's counts: the slices' per-threshold counts added up (the organisers' sums over slices)."""
    return {key: sum(part[key] for part in parts) for key in parts[0]}


def _stack_counts(pred: np.ndarray, gt: np.ndarray, want: frozenset[str]) -> dict[str, np.ndarray]:
    """Counts summed over slices."""
    return sum_slice_counts(stack_slice_counts(pred, gt, want))


# --------------------------------------------------------------------------------------------------
# Metric assembly
# --------------------------------------------------------------------------------------------------
def _best(errors: list[float]) -> tuple[float, float]:
    k = int(np.argmin(errors))  # first minimum, as a strict `<` scan keeps it
    return float(errors[k]), THRESHOLDS[k]


def _pixel_result(counts: np.ndarray) -> dict[str, Any]:
    curve = [1.0 - f_score(*map(int, row)) for row in counts]
    err, t = _best(curve)
    return {"error": err, "best_threshold": t, "per_threshold": curve}


def _rand_result(sums: np.ndarray, form: str) -> dict[str, Any]:
    curve = [1.0 - f_score(*_rand_tp_fp_fn(row, form)) for row in sums]
    err, t = _best(curve)
    return {"error": err, "best_threshold": t, "per_threshold": curve, "form": form}


def _warping_result(classes: np.ndarray, mismatch: np.ndarray, pixels: int, form: str) -> dict[str, Any]:
    if form == "splits_mergers":
        counted = classes[:, topology.SPLIT] + classes[:, topology.MERGE]
    else:
        counted = mismatch[:, 1]
    curve = [int(c) / pixels for c in counted]
    err, t = _best(curve)
    k = THRESHOLDS.index(t)
    return {
        "error": err,
        "best_threshold": t,
        "per_threshold": curve,
        "form": form,
        "split_pixels": int(classes[k, topology.SPLIT]),
        "merge_pixels": int(classes[k, topology.MERGE]),
        "mismatch_classes": {name: int(v) for name, v in zip(topology.CLASSES, classes[k], strict=True)},
        "mismatches_before_warp": int(mismatch[k, 0]),
        "mismatches_after_warp": int(mismatch[k, 1]),
    }


def pixel_error(pred: Any, labels: Any) -> dict[str, Any]:
    """Pixel error = 1 - max_t F over cell pixels. Returns error, best_threshold, per_threshold."""
    p, g = validate_isbi_inputs(pred, labels)
    return _pixel_result(_stack_counts(p, g, frozenset({"pixel"}))["pixel"])


def rand_error(pred: Any, labels: Any, *, form: str = "n2") -> dict[str, Any]:
    """Foreground-restricted Rand error = 1 - max_t F ("n2" default, or "pairs")."""
    _check_form(form, RAND_FORMS, "rand_form")
    p, g = validate_isbi_inputs(pred, labels)
    return _rand_result(_stack_counts(p, g, frozenset({"rand"}))["rand"], form)


def warping_error(pred: Any, labels: Any, *, form: str = "splits_mergers") -> dict[str, Any]:
    """Minimum splits-and-mergers warping error (or the "classic" all-mismatch form) over thresholds."""
    _check_form(form, WARPING_FORMS, "warping_form")
    p, g = validate_isbi_inputs(pred, labels)
    c = _stack_counts(p, g, frozenset({"warping"}))
    return _warping_result(c["warping"], c["mismatch"], int(g.size), form)


def warn_if_one_class(gt: np.ndarray, name: str = "labels") -> None:
    """Labels that are all membrane (or all cell) hold no segment boundary: the Rand and warping errors are
    trivially 0 whatever the prediction, so say so (one ``segbench: warning:`` line) rather than report a
    perfect score in silence."""
    cells = int(np.count_nonzero(gt))
    if cells in (0, gt.size):
        what = "membrane (0)" if cells == 0 else "cell (255)"
        warn(
            f"{name}: every pixel is {what}; the Rand and warping errors are trivially 0 for any prediction "
            "and only the pixel error is informative; check the label stack (255 = cell, 0 = membrane)"
        )


def isbi_metrics(
    pred: Any,
    labels: Any,
    *,
    rand_form: str = "n2",
    warping_form: str = "splits_mergers",
    membrane_prob: bool = False,
    labels_name: str = "labels",
) -> dict[str, Any]:
    """The three ISBI 2012 leaderboard metrics of a prediction stack against binary labels.

    ``pred``: float in [0, 1], 1 = cell (2D = one slice); ``labels``: 255 (or 1) = cell, 0 = membrane.
    Returns ``warping_error``, ``rand_error``, ``pixel_error`` (each the minimum over :data:`THRESHOLDS`),
    ``best_threshold`` and ``per_threshold`` (mappings per metric), ``split_pixels`` and ``merge_pixels``
    (at the warping error's best threshold), ``slices``, plus ``thresholds``, ``pixels``, ``rand_form``,
    ``warping_form`` and ``mismatch_classes`` (all six classes at the warping best threshold).
    Raises :class:`segbench.errors.InputError` for bad input.
    """
    _check_form(rand_form, RAND_FORMS, "rand_form")
    _check_form(warping_form, WARPING_FORMS, "warping_form")
    p, g = validate_isbi_inputs(pred, labels, membrane_prob=membrane_prob)
    warn_if_one_class(g, labels_name)
    c = _stack_counts(p, g, frozenset({"pixel", "rand", "warping"}))
    return results_from_counts(
        c, slices=int(g.shape[0]), pixels=int(g.size), rand_form=rand_form, warping_form=warping_form
    )


def results_from_counts(
    counts: dict[str, Any], *, slices: int, pixels: int, rand_form: str, warping_form: str
) -> dict[str, Any]:
    """The three errors and their details from per-threshold counts (``warping``, ``mismatch``, ``rand``,
    ``pixel`` arrays) of a stack of ``slices`` slices and ``pixels`` pixels: what :func:`isbi_metrics`
    returns, and what pooling the folds' counts gives (:mod:`segbench.metrics.isbi_pooled`)."""
    res = {
        "warping_error": _warping_result(
            np.asarray(counts["warping"], np.int64),
            np.asarray(counts["mismatch"], np.int64),
            pixels,
            warping_form,
        ),
        "rand_error": _rand_result(np.asarray(counts["rand"], np.int64), rand_form),
        "pixel_error": _pixel_result(np.asarray(counts["pixel"], np.int64)),
    }
    w = res["warping_error"]
    return {
        **{m: res[m]["error"] for m in METRICS},
        "best_threshold": {m: res[m]["best_threshold"] for m in METRICS},
        "per_threshold": {m: res[m]["per_threshold"] for m in METRICS},
        "split_pixels": w["split_pixels"],
        "merge_pixels": w["merge_pixels"],
        "slices": slices,
        "pixels": pixels,
        "thresholds": list(THRESHOLDS),
        "rand_form": rand_form,
        "warping_form": warping_form,
        "mismatch_classes": w["mismatch_classes"],
    }
