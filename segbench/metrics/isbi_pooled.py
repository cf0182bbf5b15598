"""ISBI 2012 errors pooled over cross-validation folds.

The organisers' three errors sum their per-threshold counts (pixel TP/FP/FN, Rand sums, warping
mismatch classes) over the slices of a stack before taking F and the best threshold
(:mod:`segbench.metrics.isbi`). With k-fold cross-validation every slice is scored once, by the model
of its fold; the pooled errors are those of the whole stack: the per-fold counts summed, then the same
assembly. :func:`isbi_metrics_with_counts` returns a fold's metrics (identical to
:func:`segbench.metrics.isbi.isbi_metrics`) together with its raw counts, which ``metrics.json`` keeps
under ``isbi.counts``; :func:`pooled_isbi_metrics` turns several folds' counts into the pooled errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segbench.errors import InputError
from segbench.metrics.isbi import (
    METRICS,
    THRESHOLDS,
    _pixel_result,
    _rand_result,
    _stack_counts,
    _warping_result,
    validate_isbi_inputs,
)

COUNT_KEYS = ("pixel", "rand", "warping", "mismatch")


def isbi_metrics_with_counts(
    pred: Any, labels: Any, *, rand_form: str = "n2", warping_form: str = "splits_mergers"
) -> dict[str, Any]:
    """:func:`segbench.metrics.isbi.isbi_metrics` plus ``counts`` (JSON-ready per-threshold sums)."""
    p, g = validate_isbi_inputs(pred, labels)
    c = _stack_counts(p, g, frozenset({"pixel", "rand", "warping"}))
    counts = {
        **{key: np.asarray(c[key]).tolist() for key in COUNT_KEYS},
        "pixels": int(g.size),
        "slices": int(g.shape[0]),
    }
    return {**metrics_from_counts(counts, rand_form=rand_form, warping_form=warping_form), "counts": counts}


def metrics_from_counts(
    counts: dict[str, Any], *, rand_form: str = "n2", warping_form: str = "splits_mergers"
) -> dict[str, Any]:
    """The assembly of :func:`segbench.metrics.isbi.isbi_metrics` from summed counts."""
    res = {
        "warping_error": _warping_result(
            np.asarray(counts["warping"], np.int64),
            np.asarray(counts["mismatch"], np.int64),
            int(counts["pixels"]),
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
        "slices": int(counts["slices"]),
        "pixels": int(counts["pixels"]),
        "thresholds": list(THRESHOLDS),
        "rand_form": rand_form,
        "warping_form": warping_form,
        "mismatch_classes": w["mismatch_classes"],
    }


def sum_counts(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-threshold counts of several folds added up (the stack of all their held-out slices)."""
    if not parts:
        raise InputError("pooled ISBI errors: no folds to pool")
    out: dict[str, Any] = {}
    for key in COUNT_KEYS:
        arrays = [np.asarray(p[key], np.int64) for p in parts]
        if len({a.shape for a in arrays}) != 1:
            raise InputError(
                f"pooled ISBI errors: folds disagree on the shape of their {key!r} counts; "
                "re-evaluate the runs with one segbench version"
            )
        out[key] = sum(arrays).tolist()
    out["pixels"] = sum(int(p["pixels"]) for p in parts)
    out["slices"] = sum(int(p["slices"]) for p in parts)
    return out


def pooled_isbi_metrics(parts: Sequence[dict[str, Any]], **forms: str) -> dict[str, Any]:
    """The ISBI errors of the union of the folds' held-out slices, from their ``counts``."""
    return metrics_from_counts(sum_counts(parts), **forms)
