"""How segbench writes numbers and claims: one answer for tables, pages, figures and comparisons.

Every metric has a *kind* (:func:`metric_kind`, from its key's prefix) that fixes its unit and format:

* **points** (COCO AP and AR: ``bbox.``, ``segm.``, ``keypoints.``): stored as fractions, shown x 100 in
  percentage points with one decimal, as the paper (``34.3``); tolerance bands 1 AP / 3 AP;
* **fraction** (ISBI errors, CTC SEG and IoU: ``isbi.``, ``ctc.``): shown as they are with three
  significant digits, since they span decades (warping error ``0.000353``, human value ``5e-06``); the
  paper's own values with up to four, as the paper prints them (SEG ``0.9203``); tolerance bands
  10 % / 25 % relative.
* **score** (the ISBI challenge's current V_rand and V_info, thinned: ``isbi.thinned.``): fractions near
  1, higher is better, with four significant digits as the leaderboard separates them (``0.9727``).

A value, its std, a delta, a gap, an interval bound and a spread of one metric all use its kind's format;
differences are signed (``+0.7``); an exact zero is never ``-0``. P-values have two significant digits,
percentages none (``90%``). Claim verdicts are worded here too (:data:`VERDICT_WORDS`,
:data:`COMPARISON_WORDS`); the claims engine (:mod:`segbench.claims`) decides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MISSING = "–"  # no value: a page's, a claim's
MARKDOWN_MISSING = "-"  # no value in a Markdown table's cell


def number(value: float | None, spec: str, *, signed: bool = False, missing: str = MISSING) -> str:
    """``value`` in the format ``spec`` (``.1f``, ``.3g``), ``+`` on positive ones if ``signed``;
    ``missing`` for ``None``. An exact zero is never ``-0``; a small negative value keeps its sign
    (``-0.0``: an interval's lower bound just below 0 is not ``+0.0``)."""
    if value is None:
        return missing
    return format(float(value) + 0.0, ("+" if signed else "") + spec)


def p_value(p: float) -> str:
    """A p-value: two significant digits (``0.042``, ``2.7e-05``)."""
    return f"{p:.2g}"


def percent(fraction: float, *, decimals: int = 0, signed: bool = False) -> str:
    """``0.9`` -> ``90%``; ``decimals=1, signed=True``: ``-0.026`` -> ``-2.6%``."""
    return format(fraction, f"{'+' if signed else ''}.{decimals}%")


def value_range(first: float, last: float) -> str:
    """Where a curve (a training loss) starts and ends: ``2.31 → 0.412``."""
    return f"{first:.3g} → {last:.3g}"


@dataclass(frozen=True)
class Tolerance:
    """Bands on ``|delta|``: green within ``max(good_abs, good_rel*|paper|)``, amber within the near pair."""

    unit: str
    good_abs: float
    good_rel: float
    near_abs: float
    near_rel: float

    def classify(
        self, delta: float | None, paper: float | None, *, lower_is_better: bool = False, noise: float = 0.0
    ) -> str:
        """The band of ``delta = reproduced - paper``; a delta in the better direction (positive, or
        negative for a lower-is-better metric) is at worst ``near``: beating the paper is no failure; a
        delta within ``noise`` (twice the seed spread) is ``good``: no test could tell it from the paper's."""
        if delta is None or paper is None:
            return "none"
        size = abs(delta)
        if size <= max(self.good_abs, self.good_rel * abs(paper), noise):
            return "good"
        better = delta < 0 if lower_is_better else delta > 0
        if better or size <= max(self.near_abs, self.near_rel * abs(paper)):
            return "near"
        return "far"

    def describe(self) -> str:
        def band(abs_: float, rel: float) -> str:
            parts = ([f"{abs_:g} {self.unit}"] if abs_ else []) + (
                [f"{percent(rel)} relative"] if rel else []
            )
            return " or ".join(parts)

        return (
            f"green: |delta| within {band(self.good_abs, self.good_rel)}; "
            f"amber: within {band(self.near_abs, self.near_rel)}, or further in the better direction; "
            "red: further in the worse direction"
        )


@dataclass(frozen=True)
class MetricKind:
    """The unit and number format of a family of metrics (see the module's docstring)."""

    name: str
    prefixes: tuple[str, ...]
    spec: str
    paper_spec: str  # the paper's own values: as precise as the paper prints them
    scale: float  # stored value x scale = shown value
    resolution: float  # the smallest difference the unit states (the claims' absolute std floor)
    tolerance: Tolerance

    def value(self, value: float | None, *, signed: bool = False, missing: str = MISSING) -> str:
        return number(value, self.spec, signed=signed, missing=missing)

    def paper(self, value: float | None, *, missing: str = MISSING) -> str:
        """A value the paper reports (``0.9203``, ``33.1``), to the digits it prints."""
        return number(value, self.paper_spec, missing=missing)

    def mean_std(self, cell: dict[str, Any], *, missing: str = MISSING) -> str:
        """``23.7 ± 0.4`` (no ``± std`` without one: a single seed)."""
        std = cell.get("std")
        return self.value(cell.get("mean"), missing=missing) + (
            "" if std is None else f" ± {self.value(std)}"
        )

    def reproduced(self, cell: dict[str, Any], *, missing: str = MISSING) -> str:
        """A table cell's reproduced value: ``mean ± std (seeds)``."""
        return f"{self.mean_std(cell, missing=missing)} ({cell.get('n', 0)})"

    def interval(self, low: float | None, high: float | None) -> str:
        """``[-2.0, +0.9]``: an interval of a difference, both bounds signed."""
        return f"[{self.value(low, signed=True)}, {self.value(high, signed=True)}]"


POINTS = MetricKind(
    "points",
    ("bbox.", "segm.", "keypoints."),
    ".1f",
    paper_spec=".1f",
    scale=100.0,
    resolution=0.1,
    tolerance=Tolerance("AP", good_abs=1.0, good_rel=0.0, near_abs=3.0, near_rel=0.0),
)
FRACTION = MetricKind(
    "fraction",
    ("isbi.", "ctc."),
    ".3g",
    paper_spec=".4g",
    scale=1.0,
    resolution=0.0,
    tolerance=Tolerance("", good_abs=0.0, good_rel=0.10, near_abs=0.0, near_rel=0.25),
)
SCORE = MetricKind(
    "score",
    ("isbi.thinned.",),
    ".4g",
    paper_spec=".4g",
    scale=1.0,
    resolution=0.0,
    tolerance=FRACTION.tolerance,
)
PAPER_KINDS = {"maskrcnn": POINTS, "unet": FRACTION}  # a table without metric keys: by its paper


def metric_kind(key: str) -> MetricKind:
    """The kind of a metric key (``segm.AP`` -> :data:`POINTS`, ``isbi.thinned.v_rand`` -> :data:`SCORE`);
    any other metric is a :data:`FRACTION`."""
    if key.startswith(SCORE.prefixes):
        return SCORE
    return POINTS if key.startswith(POINTS.prefixes) else FRACTION


# ---- a table's scores (registry ``scores:``): reported beside its columns, never claimed -----------

SCORES_LEGEND = (
    "V_rand and V_info (thinned): the ISBI 2012 challenge's current ranking scores, higher is better "
    "(1 = perfect), each at its own best threshold, reported beside the errors and never claimed; "
    "Arganda-Carreras et al., Front. Neuroanat. 9:142 (2015), eqs. 3 and 6 "
    "(segbench.metrics.isbi_thinned)"
)


def scores_missing_text(run_ids: list[str], *, missing: str = MISSING) -> str:
    """The line for run instances (``<run>-seed<k>``) whose metrics.json lacks a table's scores: evaluated
    before the scores existed."""
    runs = list(dict.fromkeys(rid.rsplit("-seed", 1)[0] for rid in run_ids))
    count = f"{len(run_ids)} run instance{'s' if len(run_ids) != 1 else ''}"
    return (
        f"Scores shown as {missing}: {', '.join(runs)} ({count}) evaluated before the scores existed; "
        "re-run `segbench evaluate` on them"
    )


def table_kind(table: dict[str, Any]) -> MetricKind:
    """The kind of a table's (or comparison's) metrics: its first column's, else its paper's."""
    keys = list((table.get("metrics") or {}).values())
    if keys:
        return metric_kind(str(keys[0]))
    return PAPER_KINDS.get(str(table.get("paper", "")), POINTS)


def axis_unit(key: str) -> str:
    """A figure axis's unit for a metric: ``AP, %`` / ``AR, %``, ``IoU, fraction`` (CTC) or ``fraction``."""
    if metric_kind(key) is POINTS:
        return "AR, %" if key.rpartition(".")[2].startswith("AR") else "AP, %"
    return "IoU, fraction" if key.startswith("ctc.") else "fraction"


# ---- claims: verdict words and the evidence line -------------------------------------------------

VERDICT_WORDS = {
    "reproduced": "reproduced",
    "inconclusive": "inconclusive",
    "contradicted": "contradicted",
    "untested": "untested",
    "not_measured": "not measured",
}
#: a comparison's verdict (segbench compare), the method being claim A: "the method is better"
COMPARISON_WORDS = {
    "reproduced": "better",
    "contradicted": "worse",
    "inconclusive": "inconclusive",
    "untested": "untested",
    "not_measured": "not measured",
}
VERDICT_LEGEND = (
    "green: reproduced (the matching test passes); amber: inconclusive; red: contradicted (the interval "
    "excludes the claim); grey: untested (fewer than 3 seeds) or not measured"
)


def verdict_words(verdict: str | None) -> str:
    """A verdict value in words (``not_measured`` -> ``not measured``); ``no verdict`` for none."""
    if not verdict:
        return "no verdict"
    return VERDICT_WORDS.get(str(verdict), str(verdict).replace("_", " "))


def holm_text(p_adjusted: float) -> str:
    """``Holm p 0.042``: a claim's Holm-adjusted p-value."""
    return f"Holm p {p_value(p_adjusted)}"


def count_text(counts: dict[str, int]) -> str:
    """``x reproduced of y measured (z not measured)``."""
    text = f"{counts['reproduced']} reproduced of {counts['measured']} measured"
    if counts["not_measured"]:
        text += f" ({counts['not_measured']} not measured)"
    return text


def interval_text(record: dict[str, Any], kind: MetricKind) -> str:
    """``[-0.3, +1.4]`` (a claim record's two-sided 90% interval of the gap), or ``–``."""
    iv = record.get("interval")
    if not iv:
        return MISSING
    return kind.interval(iv["low"], iv["high"])


def p_text(record: dict[str, Any]) -> str:
    """``p 0.031, Holm 0.093`` or ``–``."""
    if record.get("p_value") is None:
        return MISSING
    return f"p {p_value(record['p_value'])}, Holm {p_value(record['p_adjusted'])}"


def spread_text(record: dict[str, Any], kind: MetricKind) -> str:
    """The spread of the gap the test used: ``sd 0.8`` or ``sd 0.1 (floor; observed 0.0)``."""
    if record.get("sd_used") is None:
        return MISSING
    floored = (record.get("sd_observed") or 0.0) < record["sd_used"]
    observed = f" (floor; observed {kind.value(record.get('sd_observed'))})" if floored else ""
    return f"sd {kind.value(record['sd_used'])}{observed}"


def evidence_text(record: dict[str, Any], kind: MetricKind) -> str:
    """One line of what the seeds say: gap, interval, spread used, test, n and p (raw and adjusted)."""
    if record.get("gap") is None:
        return "not measured"
    parts = [f"gap {kind.value(record['gap'], signed=True)}"]
    if record.get("interval"):
        level = record["interval"].get("level")
        parts.append(f"{percent(level) + ' ' if level else ''}interval {interval_text(record, kind)}")
    if record.get("sd_used") is not None:
        parts.append(spread_text(record, kind))
    if record.get("test"):
        parts.append(f"{record['test']}, n {record['n']}")
    else:
        parts.append(f"n {record.get('n', 0)}")
    if record.get("p_value") is not None:
        parts.append(p_text(record))
    return "; ".join(parts)
