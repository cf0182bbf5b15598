"""One rule per number and wording (segbench.formatting): each test pins one rule with a value that the
other kind, or the old per-module formats (.2f, .4f, .3g), would write differently."""

from __future__ import annotations

import pytest

from segbench.formatting import (
    FRACTION,
    MARKDOWN_MISSING,
    MISSING,
    POINTS,
    axis_unit,
    count_text,
    evidence_text,
    holm_text,
    interval_text,
    metric_kind,
    number,
    p_text,
    p_value,
    percent,
    spread_text,
    table_kind,
    value_range,
    verdict_words,
)


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("segm.AP", POINTS),
        ("bbox.AP75", POINTS),
        ("keypoints.AP", POINTS),
        ("isbi.warping_error", FRACTION),
        ("ctc.seg", FRACTION),
        ("plugin.score", FRACTION),  # an unknown metric is not scaled to percent
    ],
)
def test_metric_kind_by_key_prefix(key: str, kind: object) -> None:
    assert metric_kind(key) is kind


def test_table_kind_from_its_metrics_else_its_paper() -> None:
    assert table_kind({"paper": "unet", "metrics": {"AP": "segm.AP"}}) is POINTS  # the metric decides
    assert table_kind({"paper": "maskrcnn", "metrics": {"e": "isbi.rand_error"}}) is FRACTION
    assert table_kind({"paper": "unet"}) is FRACTION  # a record without metric keys
    assert table_kind({"paper": "maskrcnn"}) is POINTS


def test_ap_in_points_one_decimal() -> None:
    assert POINTS.scale == 100.0
    assert POINTS.value(34.3249) == "34.3"  # not .2f's 34.32
    assert POINTS.value(60.0) == "60.0"


def test_fractions_three_significant_digits_across_decades() -> None:
    assert FRACTION.scale == 1.0
    assert FRACTION.value(0.000353) == "0.000353"  # .4f would write 0.0004
    assert FRACTION.value(5e-06) == "5e-06"  # .4f would write 0.0000
    assert FRACTION.value(0.0016345) == "0.00163"  # .4f would write 0.0016


def test_paper_values_as_the_paper_prints_them() -> None:
    assert FRACTION.paper(0.9203) == "0.9203"  # the value's .3g would write 0.92
    assert FRACTION.paper(0.0382) == "0.0382" and FRACTION.paper(5e-06) == "5e-06"
    assert POINTS.paper(33.1) == "33.1" and POINTS.paper(60.0) == "60.0"
    assert POINTS.paper(None, missing="-") == "-"


def test_signed_deltas_and_no_negative_exact_zero() -> None:
    assert POINTS.value(0.7, signed=True) == "+0.7"
    assert POINTS.value(-6.6, signed=True) == "-6.6"
    assert POINTS.value(-0.0, signed=True) == "+0.0"  # an exact zero is not "-0"
    assert POINTS.value(-0.04, signed=True) == "-0.0"  # a bound just below 0 keeps its sign
    assert number(-0.0, ".1f") == "0.0"


def test_missing_values() -> None:
    assert POINTS.value(None) == MISSING == "–"
    assert POINTS.value(None, missing=MARKDOWN_MISSING) == "-"


def test_mean_std_and_reproduced_cell() -> None:
    cell = {"mean": 23.66, "std": 0.41, "n": 3}
    assert POINTS.mean_std(cell) == "23.7 ± 0.4"
    assert POINTS.reproduced(cell) == "23.7 ± 0.4 (3)"
    assert POINTS.reproduced({"mean": 5.71, "std": None, "n": 1}) == "5.7 (1)"  # one seed: no ± std
    assert POINTS.mean_std({"mean": 1.0, "std": 0.0, "n": 3}) == "1.0 ± 0.0"  # a zero std is shown
    assert FRACTION.reproduced({"mean": None, "std": None, "n": 0}, missing="-") == "- (0)"


def test_p_values_two_significant_digits() -> None:
    assert p_value(0.04213) == "0.042"
    assert p_value(2.66e-05) == "2.7e-05"
    assert p_value(1.0) == "1"
    assert holm_text(0.0351) == "Holm p 0.035"
    assert p_text({"p_value": 0.0072, "p_adjusted": 0.035}) == "p 0.0072, Holm 0.035"
    assert p_text({"p_value": None}) == MISSING


def test_percentages() -> None:
    assert percent(0.9) == "90%"
    assert percent(-0.026, decimals=1, signed=True) == "-2.6%"


def test_intervals_signed_in_the_metric_unit() -> None:
    record = {"interval": {"low": -2.034, "high": -0.92, "level": 0.9}}
    assert interval_text(record, POINTS) == "[-2.0, -0.9]"
    assert FRACTION.interval(-0.0020172, 0.076951) == "[-0.00202, +0.077]"
    assert interval_text({}, POINTS) == MISSING


def test_spread_names_a_floor() -> None:
    assert spread_text({"sd_used": 0.82, "sd_observed": 0.82}, POINTS) == "sd 0.8"
    assert spread_text({"sd_used": 0.1, "sd_observed": 0.0}, POINTS) == "sd 0.1 (floor; observed 0.0)"
    assert spread_text({}, POINTS) == MISSING


def test_evidence_line() -> None:
    record = {
        "gap": 10.66,
        "interval": {"low": 5.33, "high": 15.98, "level": 0.9},
        "sd_used": 3.16,
        "sd_observed": 3.16,
        "test": "one-sided paired t-test over seeds",
        "n": 3,
        "p_value": 0.014,
        "p_adjusted": 0.042,
    }
    assert evidence_text(record, POINTS) == (
        "gap +10.7; 90% interval [+5.3, +16.0]; sd 3.2; one-sided paired t-test over seeds, n 3; "
        "p 0.014, Holm 0.042"
    )
    assert evidence_text({"gap": 0.125, "n": 1}, FRACTION) == "gap +0.125; n 1"
    assert evidence_text({"gap": None}, POINTS) == "not measured"


def test_verdict_and_count_wording() -> None:
    assert verdict_words("not_measured") == "not measured"
    assert verdict_words("reproduced") == "reproduced"
    assert verdict_words(None) == "no verdict"
    assert count_text({"reproduced": 3, "measured": 5, "not_measured": 0}) == "3 reproduced of 5 measured"
    assert count_text({"reproduced": 1, "measured": 3, "not_measured": 1}) == (
        "1 reproduced of 3 measured (1 not measured)"
    )


def test_comparison_words_map_every_verdict_back() -> None:
    from segbench.claims import Verdict
    from segbench.formatting import COMPARISON_WORDS, VERDICT_WORDS
    from segbench.reporting.compare_page import WORD_VERDICTS

    assert set(COMPARISON_WORDS) == set(VERDICT_WORDS) == {v.value for v in Verdict}
    assert all(WORD_VERDICTS[word] is Verdict(value) for value, word in COMPARISON_WORDS.items())
    assert Verdict.NOT_MEASURED.words == "not measured"


def test_tolerance_bands_per_kind() -> None:
    assert POINTS.tolerance.classify(-0.95, 30.0) == "good"  # within 1 AP
    assert POINTS.tolerance.classify(-2.5, 30.0) == "near"  # within 3 AP
    assert POINTS.tolerance.classify(-3.5, 30.0) == "far"
    assert FRACTION.tolerance.classify(0.003, 0.04, lower_is_better=True) == "good"  # within 10 %
    assert FRACTION.tolerance.classify(0.02, 0.04, lower_is_better=True) == "far"
    assert POINTS.tolerance.describe().startswith("green: |delta| within 1 AP; amber: within 3 AP")
    assert FRACTION.tolerance.describe().startswith("green: |delta| within 10% relative")


def test_std_floor_is_the_kinds_resolution() -> None:
    from segbench.claims import std_floor

    assert std_floor("segm.AP", [1.0]) == POINTS.resolution == 0.1
    assert std_floor("isbi.pixel_error", [0.05]) == pytest.approx(0.01 * 0.05)  # relative floor alone


def test_axis_units_and_ranges() -> None:
    assert axis_unit("segm.AP") == "AP, %"
    assert axis_unit("bbox.AR100") == "AR, %"
    assert axis_unit("ctc.iou") == "IoU, fraction"
    assert axis_unit("isbi.rand_error") == "fraction"
    assert value_range(2.3141, 0.41234) == "2.31 → 0.412"
