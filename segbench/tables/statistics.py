"""Paired statistics for comparing a method with a baseline over the same seeds.

The test is a two-sided paired t-test over seeds: seed k of the method and seed k of the baseline share
the data order, initialisation seed and schedule, so their difference removes the seed's own effect.
With n seeds the test has n - 1 degrees of freedom; with identical results (zero differences) there is
nothing to detect (p = 1). A paired bootstrap over images would need per-image AP, which COCOeval does
not expose without re-running it per image; the seed-level test is what the tables report.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from scipy import stats

ALPHA = 0.05
TEST_NAME = "paired t-test over seeds (two-sided)"


def paired_comparison(
    method: list[float], baseline: list[float], *, higher_is_better: bool = True, alpha: float = ALPHA
) -> dict[str, Any]:
    """Per-seed differences ``method - baseline``, their mean and std, t, p and a verdict."""
    if len(method) != len(baseline):
        raise ValueError(f"paired comparison needs equal seed counts, got {len(method)} and {len(baseline)}")
    diffs = [m - b for m, b in zip(method, baseline, strict=True)]
    n = len(diffs)
    result: dict[str, Any] = {
        "test": TEST_NAME,
        "alpha": alpha,
        "n": n,
        "differences": diffs,
        "mean_difference": statistics.fmean(diffs) if diffs else None,
        "std_difference": statistics.stdev(diffs) if n > 1 else None,
        "t": None,
        "p_value": None,
        "significant": False,
    }
    if n < 2:
        result["verdict"] = "not tested (needs at least 2 seeds)"
        return result
    mean, sd = result["mean_difference"], result["std_difference"]
    if sd == 0.0:
        t, p = (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    else:
        t = mean / (sd / math.sqrt(n))
        p = float(2 * stats.t.sf(abs(t), df=n - 1))
    result.update(t=t, p_value=p, significant=p < alpha)
    if not result["significant"]:
        result["verdict"] = "no significant difference"
    else:
        better = (mean > 0) == higher_is_better
        result["verdict"] = "better" if better else "worse"
    return result
