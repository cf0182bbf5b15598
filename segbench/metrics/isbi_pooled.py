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
from segbench.metrics.isbi import _stack_counts, results_from_counts, validate_isbi_inputs

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
    return results_from_counts(
        counts,
        slices=int(counts["slices"]),
        pixels=int(counts["pixels"]),
        rand_form=rand_form,
        warping_form=warping_form,
    )


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
