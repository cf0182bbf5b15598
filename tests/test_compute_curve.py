"""Error against compute (segbench.tables.compute_curve): the power law, its prediction and its wording."""

from __future__ import annotations

import copy
import math

import pytest

from segbench.errors import InputError
from segbench.registry import load_registry
from segbench.registry.validate import validate_registry
from segbench.tables.compute_curve import column_curve, curve_sentences, power_law

ITERATIONS = [500, 1000, 2000, 8000]


def law(a: float, slope: float) -> list[float]:
    return [a * i**slope for i in ITERATIONS]


def test_an_exact_power_law_is_recovered_with_its_prediction() -> None:
    errors = law(2.0, -0.5)
    fit = power_law(ITERATIONS, errors)
    assert fit is not None
    assert fit["slope"] == pytest.approx(-0.5) and fit["r2"] == pytest.approx(1.0)
    target = 2.0 * 32000**-0.5  # the law's error at 32000 iterations = 16x a unit of 2000
    curve = column_curve(ITERATIONS, errors, [errors, errors], target, unit=2000)
    assert curve["predicted_multiple"] == pytest.approx(16.0)
    assert curve["extrapolation_factor"] == pytest.approx(4.0)
    assert curve["fold_predicted_multiples"] == [pytest.approx(16.0)] * 2
    assert curve["fold_slope_std"] == pytest.approx(0.0, abs=1e-12)
    assert curve["reached_by"] == [] and curve["flattened"] is False


def test_a_measured_budget_at_or_below_the_target_is_named() -> None:
    errors = law(2.0, -0.5)
    curve = column_curve(ITERATIONS, errors, [], errors[2], unit=2000)  # 2000 iterations hit it exactly
    assert curve["reached_by"] == [1.0, 4.0]
    assert curve["predicted_multiple"] == pytest.approx(1.0)
    assert curve["fold_slopes"] == [] and curve["fold_slope_std"] is None


def test_a_curve_whose_last_segment_levels_off_is_flattened() -> None:
    errors = [0.30, 0.22, 0.16, 0.155]  # steep, then almost flat from 2000 to 8000
    curve = column_curve(ITERATIONS, errors, [], 0.05, unit=2000)
    last = math.log(0.155 / 0.16) / math.log(4)
    assert curve["last_segment_slope"] == pytest.approx(last)
    assert curve["flattened"] is True


def test_errors_that_do_not_fall_never_reach_the_target() -> None:
    curve = column_curve(ITERATIONS, [0.1, 0.11, 0.12, 0.13], [], 0.05, unit=2000)
    assert curve["fit"]["slope"] > 0 and curve["predicted_multiple"] is None
    (sentence,) = curve_sentences(
        {
            "iterations": ITERATIONS,
            "unit_iterations": 2000,
            "target_factor": 2,
            "flattened_below": 0.5,
            "columns": {"rand_error": curve},
        },
        lambda v: f"{v:.3g}",
    )
    assert "never reaches 2x the paper (0.05)" in sentence and "no measured budget reaches it" in sentence
    assert sentence.startswith("rand_error: pooled error ∝ iterations^+0.")


def test_the_sentence_states_the_fit_the_prediction_and_the_extrapolation() -> None:
    errors = law(2.0, -0.5)
    curve = column_curve(ITERATIONS, errors, [errors, law(2.2, -0.5)], 2.0 * 32000**-0.5, unit=2000)
    (sentence,) = curve_sentences(
        {
            "iterations": ITERATIONS,
            "unit_iterations": 2000,
            "target_factor": 2,
            "flattened_below": 0.5,
            "columns": {"warping_error": curve},
        },
        lambda v: f"{v:.3g}",
    )
    assert "iterations^-0.50 (± 0.00, R² 1.00; per fold -0.50 ± 0.00) over 0.25x, 0.5x, 1x, 4x" in sentence
    assert (
        "at 16x Table 1's iterations (folds 16x-19.4x), an extrapolation 4x beyond the largest budget"
        in sentence
    )
    assert "not flattened" in sentence


def test_a_curve_naming_an_unknown_row_is_refused_by_name() -> None:
    registry = copy.deepcopy(load_registry())
    registry["tables"]["unet_budget"]["compute_curve"]["rows"].append("x16")
    with pytest.raises(InputError, match=r"tables/unet_budget/compute_curve.*\['x16'\] are not row ids"):
        validate_registry(registry, source="experiments.yaml")


def test_equal_errors_give_a_flat_fit_without_nan() -> None:
    curve = column_curve(ITERATIONS, [0.1] * 4, [[0.1] * 4], 0.05, unit=2000)
    assert curve["fit"]["slope"] == 0 and curve["fit"]["r2"] is None
    assert curve["predicted_multiple"] is None
    assert power_law(ITERATIONS[:2], [0.2, 0.1])["slope_stderr"] is None  # 2 points: no residual
