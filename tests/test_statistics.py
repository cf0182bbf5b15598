"""The paired test that `segbench compare` reports: no false alarm on identical methods, detection of a
method that is better by construction, and the t statistic against scipy's own paired test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from segbench.tables.statistics import paired_comparison


def test_identical_methods_are_not_different():
    baseline = [31.2, 30.4, 32.0]
    result = paired_comparison(list(baseline), baseline)
    assert result["p_value"] == 1.0 and not result["significant"]
    assert result["verdict"] == "no significant difference"


def test_noise_alone_is_rarely_significant():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        base = rng.normal(30, 1, 5)
        same = base + rng.normal(0, 0.5, 5)  # same method, run-to-run noise only
        hits += paired_comparison(list(same), list(base))["significant"]
    assert hits / 400 < 0.1  # about alpha = 0.05


def test_better_by_construction_is_detected():
    rng = np.random.default_rng(1)
    base = rng.normal(30, 1.0, 5)
    better = base + 2.0 + rng.normal(0, 0.3, 5)
    result = paired_comparison(list(better), list(base))
    assert result["significant"] and result["verdict"] == "better"
    assert result["mean_difference"] == pytest.approx(float(np.mean(better - base)))
    worse = paired_comparison(list(base), list(better))
    assert worse["verdict"] == "worse"


def test_lower_is_better_flips_the_verdict():
    errors = [0.010, 0.012, 0.011]
    baseline = [0.030, 0.031, 0.029]
    assert paired_comparison(errors, baseline, higher_is_better=False)["verdict"] == "better"


def test_t_and_p_match_scipy():
    a, b = [1.0, 2.5, 3.1, 4.0], [0.5, 2.0, 2.0, 3.9]
    ours = paired_comparison(a, b)
    ref = stats.ttest_rel(a, b)
    assert ours["t"] == pytest.approx(ref.statistic) and ours["p_value"] == pytest.approx(ref.pvalue)


def test_single_seed_is_not_tested():
    assert paired_comparison([1.0], [0.0])["verdict"].startswith("not tested")
