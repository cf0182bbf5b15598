"""ISBI 2012 errors pooled over cross-validation folds.

The organisers' three errors sum their per-threshold counts (pixel TP/FP/FN, Rand sums, warping
mismatch classes) over the slices of a stack before taking F and the best threshold
(:mod:`segbench.metrics.isbi`). With k-fold cross-validation every slice is scored once, by the model
of its fold; the pooled errors are those of the whole stack: the per-fold counts summed, then the same
assembly. :func:`isbi_metrics_with_counts` returns a fold's metrics (identical to
:func:`segbench.metrics.isbi.isbi_metrics`) together with its raw counts, which ``metrics.json`` keeps
under ``isbi.counts``; :func:`pooled_isbi_metrics` turns several folds' counts into the pooled errors.

With ``per_slice=True`` it also returns ``per_slice``: each slice's three errors at the stack's best
thresholds (the thresholds the fold's reported errors use; :func:`slice_errors`), assembled from the same
per-slice counts the stack's are summed from, so they cost no second scoring pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segbench.errors import InputError
from segbench.metrics.isbi import (
    METRICS,
    THRESHOLDS,
    results_from_counts,
    stack_slice_counts,
    sum_slice_counts,
    validate_isbi_inputs,
)

COUNT_KEYS = ("pixel", "rand", "warping", "mismatch")


def isbi_metrics_with_counts(
    pred: Any,
    labels: Any,
    *,
    rand_form: str = "n2",
    warping_form: str = "splits_mergers",
    per_slice: bool = False,
) -> dict[str, Any]:
    """:func:`segbench.metrics.isbi.isbi_metrics` plus ``counts`` (JSON-ready per-threshold sums), and with
    ``per_slice`` each slice's errors at the stack's best thresholds (:func:`slice_errors`)."""
    p, g = validate_isbi_inputs(pred, labels)
    parts = stack_slice_counts(p, g, frozenset({"pixel", "rand", "warping"}))
    c = sum_slice_counts(parts)
    counts = {
        **{key: np.asarray(c[key]).tolist() for key in COUNT_KEYS},
        "pixels": int(g.size),
        "slices": int(g.shape[0]),
    }
    forms = {"rand_form": rand_form, "warping_form": warping_form}
    out = {**metrics_from_counts(counts, **forms), "counts": counts}
    if per_slice:
        out["per_slice"] = slice_errors(parts, out["best_threshold"], int(g[0].size), **forms)
    return out


def slice_errors(
    parts: Sequence[dict[str, Any]],
    best_threshold: dict[str, float],
    pixels: int,
    *,
    rand_form: str = "n2",
    warping_form: str = "splits_mergers",
) -> list[dict[str, Any]]:
    """Each slice's warping, Rand and pixel error at the stack's ``best_threshold`` of that error (not the
    slice's own best), from its per-threshold counts ``parts`` (slices of ``pixels`` pixels each), with its
    counts at those thresholds: ``counts`` holds ``pixel`` (TP, FP, FN) and ``rand`` (the Rand sums) at
    the pixel and Rand thresholds, ``warping`` (mismatch classes) and ``mismatch`` (before, after the warp)
    at the warping threshold. The slices' ``counts`` add up to the stack's at those thresholds, so the
    stack's errors follow from them; the warping error, a sum over pixels, is the pixel-weighted mean of
    the slices'. The errors are assembled by :func:`segbench.metrics.isbi.results_from_counts`, as the
    stack's are."""
    index = {m: THRESHOLDS.index(best_threshold[m]) for m in METRICS}
    at = {
        "pixel": "pixel_error",
        "rand": "rand_error",
        "warping": "warping_error",
        "mismatch": "warping_error",
    }
    out = []
    for part in parts:
        curves = results_from_counts(
            part, slices=1, pixels=pixels, rand_form=rand_form, warping_form=warping_form
        )["per_threshold"]
        out.append(
            {
                **{m: curves[m][index[m]] for m in METRICS},
                "pixels": pixels,
                "counts": {key: np.asarray(part[key][index[m]]).tolist() for key, m in at.items()},
            }
        )
    return out


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
