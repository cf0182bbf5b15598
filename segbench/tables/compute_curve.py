"""Error against training compute: a power law fitted per error to the rows of a budget study (issue #38).

Computed at the scales whose values are absolute (real data: real_cpu, paper), where the paper's errors
are a target; elsewhere the table has no curve.

A table's ``compute_curve`` (registry) names its rows along one compute axis (the same network at
several multiples of one schedule: the ``budget`` runs), the row whose iterations are the unit
(``reference``: Table 1's), and a target (``target_factor`` times the paper's value of ``target_row``).
Per error column the fit is ordinary least squares of log(error) on log(iterations) (a power law,
error = a * iterations^slope), on the errors of all held-out slices pooled and, for the spread, on each
fold alone. From it: the iterations at which the fitted line reaches the target, in multiples of the
reference, and whether the curve has flattened: the slope of its last segment (the two largest budgets)
against the slope of the whole fit. A prediction beyond the measured range is an extrapolation of a
straight line in log-log space and says so with its factor.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from scipy import stats

from segbench.errors import InputError

#: the last segment's slope below this fraction of the fitted slope: the curve has flattened
FLATTENED_BELOW = 0.5


def row_iterations(spec: dict[str, Any], table: dict[str, Any], scale: str, registry: dict) -> dict[str, int]:
    """The training iterations of each row the curve names (its run's resolved schedule at ``scale``)."""
    from segbench.registry import resolve_run

    rows = {row["id"]: row for row in table["rows"]}
    out = {}
    for row_id in spec["rows"]:
        if "run" not in rows.get(row_id, {}):
            raise InputError(f"compute_curve row {row_id!r}: not a row with a run of this table")
        out[row_id] = int(resolve_run(rows[row_id]["run"], scale, 0, registry)["schedule"]["iterations"])
    return out


def power_law(iterations: list[int], errors: list[float]) -> dict[str, float] | None:
    """Least squares of log(error) on log(iterations); None with fewer than 2 points or a non-positive error."""
    if len(errors) < 2 or min(errors) <= 0 or len(set(iterations)) < 2:
        return None
    fit = stats.linregress([math.log(i) for i in iterations], [math.log(e) for e in errors])
    stderr = float(fit.stderr)  # undefined (nan) through 2 points: no residual degree of freedom
    return {
        "slope": float(fit.slope),
        "slope_stderr": stderr if len(errors) > 2 and math.isfinite(stderr) else None,
        "intercept": float(fit.intercept),
        "r2": float(fit.rvalue**2) if math.isfinite(fit.rvalue) else None,  # undefined for equal errors
    }


def iterations_for(fit: dict[str, float] | None, target: float) -> float | None:
    """Where the fitted line reaches ``target``; None where it never does (a slope >= 0)."""
    if fit is None or fit["slope"] >= 0 or target <= 0:
        return None
    return math.exp((math.log(target) - fit["intercept"]) / fit["slope"])


def column_curve(
    iterations: list[int], pooled: list[float], per_fold: list[list[float]], target: float, unit: int
) -> dict[str, Any]:
    """The fit of one error column: pooled, per fold, the predicted iterations to ``target`` in multiples
    of ``unit``, the last segment's slope and whether the curve has flattened."""
    fit = power_law(iterations, pooled)
    folds = [power_law(iterations, errors) for errors in per_fold]
    fold_slopes = [f["slope"] for f in folds if f is not None]
    predicted = iterations_for(fit, target)
    fold_predicted = [iterations_for(f, target) for f in folds]
    last = power_law(iterations[-2:], pooled[-2:])
    flattened = (
        None
        if fit is None or last is None or fit["slope"] >= 0
        else last["slope"] > FLATTENED_BELOW * fit["slope"]
    )
    return {
        "target": target,
        "pooled": pooled,
        "fit": fit,
        "fold_slopes": fold_slopes,
        "fold_slope_mean": sum(fold_slopes) / len(fold_slopes) if fold_slopes else None,
        "fold_slope_std": statistics.stdev(fold_slopes) if len(fold_slopes) > 1 else None,
        "predicted_multiple": None if predicted is None else predicted / unit,
        "fold_predicted_multiples": [None if p is None else p / unit for p in fold_predicted],
        "extrapolation_factor": None if predicted is None else predicted / max(iterations),
        "reached_by": [i / unit for i, e in zip(iterations, pooled, strict=True) if e <= target],
        "last_segment_slope": None if last is None else last["slope"],
        "flattened": flattened,
    }


def compute_curve(
    spec: dict[str, Any], table: dict[str, Any], rows: list[dict[str, Any]], scale: str, registry: dict
) -> dict[str, Any]:
    """The table's ``compute_curve`` block: per column the fit of :func:`column_curve` over the rows the
    registry names, from the assembled ``rows`` (their pooled errors and per-fold values)."""
    iterations = row_iterations(spec, table, scale, registry)
    by_id = {row["id"]: row for row in rows}
    target_row = {row["id"]: row for row in table["rows"]}[spec["target_row"]]
    unit = iterations[spec["reference"]]
    order = sorted(spec["rows"], key=iterations.__getitem__)
    its = [iterations[r] for r in order]
    columns = {}
    for k, col in enumerate(table["columns"]):
        paper = target_row["paper_values"][k]
        cells = [by_id[r]["values"][col] for r in order]
        pooled = [c.get("pooled") if c.get("pooled") is not None else c.get("mean") for c in cells]
        if paper is None or any(v is None for v in pooled):
            continue
        seeds = [c.get("per_seed") or [] for c in cells]
        folds = len(seeds[0])
        per_fold = [
            [s[f] for s in seeds]
            for f in range(folds)
            if all(len(s) == folds and s[f] is not None for s in seeds)
        ]
        columns[col] = {
            "paper": paper,
            **column_curve(its, pooled, per_fold, spec["target_factor"] * paper, unit),
        }
    return {
        "rows": order,
        "iterations": its,
        "reference": spec["reference"],
        "unit_iterations": unit,
        "target_row": spec["target_row"],
        "target_factor": spec["target_factor"],
        "flattened_below": FLATTENED_BELOW,
        "columns": columns,
    }


def curve_sentences(curve: dict[str, Any], value: Any) -> list[str]:
    """One sentence per error column, for the Markdown, the page and the README digest; ``value`` formats
    an error (:mod:`segbench.formatting`)."""
    budgets = ", ".join(f"{i / curve['unit_iterations']:g}x" for i in curve["iterations"])
    out = []
    for col, c in curve["columns"].items():
        fit = c["fit"]
        if fit is None:
            out.append(f"{col}: no power law fits the pooled errors (a non-positive error or one budget).")
            continue
        spread = (
            f"; per fold {c['fold_slope_mean']:+.2f} ± {c['fold_slope_std']:.2f}"
            if c["fold_slope_std"] is not None
            else ""
        )
        stderr = "" if fit["slope_stderr"] is None else f"± {fit['slope_stderr']:.2f}, "
        r2 = "undefined" if fit["r2"] is None else f"{fit['r2']:.2f}"
        target = f"{curve['target_factor']:g}x the paper ({value(c['target'])})"
        if c["predicted_multiple"] is None:
            reach = f"the fitted line never reaches {target}"
        else:
            folds = sorted(m for m in c["fold_predicted_multiples"] if m is not None)
            fold_range = f" (folds {folds[0]:.3g}x-{folds[-1]:.3g}x)" if len(folds) > 1 else ""
            extrapolated = (
                f", an extrapolation {c['extrapolation_factor']:.3g}x beyond the largest budget"
                if c["extrapolation_factor"] > 1
                else ""
            )
            reach = (
                f"it predicts {target} at {c['predicted_multiple']:.3g}x Table 1's iterations{fold_range}"
                f"{extrapolated}"
            )
        reached = (
            f"; reached at {', '.join(f'{m:g}x' for m in c['reached_by'])}"
            if c["reached_by"]
            else "; no measured budget reaches it"
        )
        shape = (
            ""
            if c["flattened"] is None
            else f"; last segment slope {c['last_segment_slope']:+.2f}: "
            + ("flattened" if c["flattened"] else "not flattened")
            + f" (flattened: below {curve['flattened_below']:g} of the fitted slope)"
        )
        out.append(
            f"{col}: pooled error ∝ iterations^{fit['slope']:+.2f} ({stderr}R² {r2}{spread}) "
            f"over {budgets}; {reach}{reached}{shape}."
        )
    return out
