"""The claims engine: one place where a claim about two rows is tested, judged and worded.

A claim compares row A (``better``) with row B (``worse``) on one metric; its *gap* is oriented so that a
positive gap is the claim's direction (``A - B``, or ``B - A`` for a lower-is-better metric). Three kinds:

* **superiority** (the paper's "A improves on B"): one-sided t-test of ``gap > 0``;
* **equivalence** (the paper's "A is on par with B"): TOST, both one-sided tests of ``|gap| < m``;
* **non-inferiority** ("A is no worse than B"): one-sided t-test of ``gap > -m``,

with the margin ``m`` stated per claim in the registry, never taken from the data being judged. Seeds are
paired (seed k of A and seed k of B share data order, initialisation seed and schedule) where both rows
have the same seeds, so the test runs on the per-seed gaps with n - 1 degrees of freedom; otherwise the
two rows are compared by Welch's t-test. Where a row is deterministic (no spread over its seeds: a
classical baseline) or the gaps are identical, the spread the test uses is floored (:func:`std_floor`), so
that such a pair is not infinitely significant; rows that vary are tested with their own spread.

Every test is summarised by one interval: the two-sided 90% interval of the gap, whose bounds are the
one-sided 95% bounds. Superiority passes when its lower bound exceeds 0, non-inferiority when it exceeds
``-m``, equivalence when the interval lies inside ``±m`` (alpha 0.05 each way). Within a table the claims'
p-values are Holm-adjusted, and the verdict uses the adjusted p:

* ``reproduced``: the matching test passes (adjusted p < alpha) with at least :data:`MIN_SEEDS` seeds;
* ``contradicted``: the interval excludes the claim's direction (superiority: upper bound < 0;
  non-inferiority: upper bound < -m; equivalence: the interval lies outside ``±m``);
* ``inconclusive``: neither;
* ``untested``: fewer than :data:`MIN_SEEDS` seeds (or folds) on a side, or nothing to test (no spread and
  no floor);
* ``not_measured``: a side has no reproduced value (a reference-only row, a run without that output).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from scipy import stats

from segbench.formatting import POINTS, VERDICT_WORDS, holm_text, metric_kind, p_value, percent

ALPHA = 0.05
MIN_SEEDS = 3
INTERVAL_LEVEL = 1 - 2 * ALPHA  # 0.90 two-sided: each bound is a one-sided 95% bound

#: The absolute std floor of a metric is its kind's resolution (:mod:`segbench.formatting`): 0.1 AP for COCO
#: metrics (the paper's precision); other metrics (error rates, IoU, SEG: fractions) have the relative floor alone.
STD_FLOOR_REL = 0.01  # 1 % of the larger |mean| of the two rows
STD_FLOOR_RULE = (
    "where a row is deterministic (no spread over its seeds, e.g. a classical baseline) or the gaps are "
    f"identical, the spread of the gap is floored at max({percent(STD_FLOOR_REL)} of the larger |mean|, "
    f"{POINTS.resolution:g} {POINTS.tolerance.unit} for COCO metrics), so that such a pair is not infinitely significant"
)


class Verdict(str, Enum):
    REPRODUCED = "reproduced"
    INCONCLUSIVE = "inconclusive"
    CONTRADICTED = "contradicted"
    UNTESTED = "untested"
    NOT_MEASURED = "not_measured"

    @property
    def words(self) -> str:
        return VERDICT_WORDS[self.value]


VERDICT_MEANING = {
    Verdict.REPRODUCED: "the matching test passes at alpha 0.05 (Holm-adjusted within the table)",
    Verdict.INCONCLUSIVE: "the seeds neither support nor exclude the claim",
    Verdict.CONTRADICTED: "the interval excludes the claim's direction",
    Verdict.UNTESTED: f"fewer than {MIN_SEEDS} seeds or folds per side, or nothing to test",
    Verdict.NOT_MEASURED: "a side has no reproduced value",
}


class Kind(str, Enum):
    SUPERIORITY = "superiority"
    EQUIVALENCE = "equivalence"
    NONINFERIORITY = "noninferiority"


#: kind names of table JSONs assembled before this engine (read, never written)
LEGACY_KINDS = {"better": "superiority", "equivalent": "equivalence", "noninferior": "noninferiority"}


@dataclass(frozen=True)
class Claim:
    """``better`` beats / matches / is no worse than ``worse`` on ``metric`` (rows of one table)."""

    better: str
    worse: str
    metric: str
    kind: Kind = Kind.SUPERIORITY
    margin: float | None = None
    source: str = "paper"
    lower_is_better: bool = False

    def __post_init__(self) -> None:
        if self.kind is not Kind.SUPERIORITY and not (self.margin and self.margin > 0):
            raise ValueError(f"a {self.kind.value} claim needs a positive margin, got {self.margin!r}")

    @classmethod
    def from_registry(cls, entry: dict[str, Any], *, lower_is_better: bool = False) -> Claim:
        return cls(
            better=entry["better"],
            worse=entry["worse"],
            metric=entry["metric"],
            kind=Kind(LEGACY_KINDS.get(entry.get("kind"), entry.get("kind") or Kind.SUPERIORITY.value)),
            margin=None if entry.get("margin") is None else float(entry["margin"]),
            source=entry.get("source", "paper"),
            lower_is_better=lower_is_better,
        )

    @property
    def sign(self) -> float:
        return -1.0 if self.lower_is_better else 1.0

    def statement(self, better: str | None = None, worse: str | None = None, *, symbols: bool = False) -> str:
        """The claim in words (``symbols``: ``A > B on AP``), with the row labels given or the row ids."""
        a, b = better or self.better, worse or self.worse
        m = f"{self.margin:g}" if self.margin is not None else ""
        if self.kind is Kind.EQUIVALENCE:
            return (
                f"{a} ≈ {b} on {self.metric} (within ±{m})"
                if symbols
                else (f"{a} on par with {b} on {self.metric} (within ±{m})")
            )
        if self.kind is Kind.NONINFERIORITY:
            return (
                f"{a} ≥ {b} − {m} on {self.metric}"
                if symbols
                else (f"{a} no worse than {b} on {self.metric} (margin {m})")
            )
        if symbols:
            return f"{a} {'<' if self.lower_is_better else '>'} {b} on {self.metric}"
        return f"{a} {'lower than' if self.lower_is_better else 'better than'} {b} on {self.metric}"

    def condition(self) -> str:
        """What the test requires of the gap's interval, e.g. ``lower bound > 0``."""
        if self.kind is Kind.EQUIVALENCE:
            return f"interval inside ±{self.margin:g}"
        if self.kind is Kind.NONINFERIORITY:
            return f"lower bound > −{self.margin:g}"
        return "lower bound > 0"


@dataclass
class Evidence:
    """What the seeds say about one claim, before the table's multiplicity adjustment."""

    claim: Claim
    n: int = 0
    gap: float | None = None
    gap_per_seed: list[float] = field(default_factory=list)
    paired: bool | None = None
    test: str | None = None
    df: float | None = None
    sd_observed: float | None = None
    sd_used: float | None = None
    std_floor: float | None = None
    se: float | None = None
    t: float | None = None
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    untested_reason: str | None = None


def std_floor(metric_key: str, means: list[float]) -> float:
    """The smallest spread a gap is tested with (:data:`STD_FLOOR_RULE`)."""
    return max(metric_kind(metric_key).resolution, STD_FLOOR_REL * max((abs(m) for m in means), default=0.0))


def _finite(values: list[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _rounding(xa: list[float], xb: list[float]) -> float:
    """A spread this small is floating-point rounding, not seed variance (0.30 - 0.25 != 0.20 - 0.15)."""
    return 1e-9 * max(abs(v) for v in [*xa, *xb, 1e-300])


def weigh(claim: Claim, a: list[float | None], b: list[float | None], *, floor: float) -> Evidence:
    """The test of ``claim`` on row A's per-seed values ``a`` and row B's ``b`` (index = seed)."""
    ev = Evidence(claim)
    xa, xb = _finite(a), _finite(b)
    if not xa or not xb:
        return ev
    sign = claim.sign
    ev.gap = sign * (statistics.fmean(xa) - statistics.fmean(xb))
    ev.paired = len(a) == len(b) == len(xa) == len(xb)
    margin = claim.margin or 0.0
    if ev.paired:
        diffs = [sign * (x - y) for x, y in zip(xa, xb, strict=True)]
        ev.gap_per_seed = diffs
        ev.n = len(diffs)
        if ev.n < MIN_SEEDS:
            ev.untested_reason = f"{ev.n} seed{'s' if ev.n != 1 else ''} < {MIN_SEEDS}"
            return ev
        ev.sd_observed = statistics.stdev(diffs)
        deterministic = min(statistics.stdev(xa), statistics.stdev(xb), ev.sd_observed) <= _rounding(xa, xb)
        ev.std_floor = floor if deterministic else None
        ev.sd_used = max(ev.sd_observed, floor) if deterministic else ev.sd_observed
        ev.se = ev.sd_used / math.sqrt(ev.n)
        ev.df = ev.n - 1
        ev.test = "paired t-test over seeds"
    else:
        ev.n = min(len(xa), len(xb))
        if ev.n < MIN_SEEDS:
            ev.untested_reason = f"{ev.n} seed{'s' if ev.n != 1 else ''} < {MIN_SEEDS} on a side"
            return ev
        sa, sb = statistics.stdev(xa), statistics.stdev(xb)
        ev.sd_observed = math.sqrt((sa * sa + sb * sb) / 2)
        ev.std_floor = floor if min(sa, sb) <= _rounding(xa, xb) else None
        sa, sb = (max(sa, floor), max(sb, floor)) if ev.std_floor is not None else (sa, sb)
        va, vb = sa * sa / len(xa), sb * sb / len(xb)
        ev.se = math.sqrt(va + vb)
        ev.sd_used = math.sqrt((sa * sa + sb * sb) / 2)
        ev.df = (va + vb) ** 2 / (va * va / (len(xa) - 1) + vb * vb / (len(xb) - 1)) if va + vb else None
        ev.test = "Welch t-test (unpaired seeds)"
    if not ev.se or not ev.df:
        ev.untested_reason = "no spread and no floor: nothing to test"
        return ev
    tdist = stats.t(df=ev.df)
    half = float(tdist.ppf(1 - ALPHA)) * ev.se
    ev.interval = (ev.gap - half, ev.gap + half)
    if claim.kind is Kind.SUPERIORITY:
        ev.t = ev.gap / ev.se
        ev.p_value = float(tdist.sf(ev.t))
    elif claim.kind is Kind.NONINFERIORITY:
        ev.t = (ev.gap + margin) / ev.se
        ev.p_value = float(tdist.sf(ev.t))
    else:  # TOST: the larger of the two one-sided p-values
        t_low, t_high = (ev.gap + margin) / ev.se, (ev.gap - margin) / ev.se
        ev.t = min(t_low, -t_high)
        ev.p_value = max(float(tdist.sf(t_low)), float(tdist.cdf(t_high)))
    ev.test = {
        Kind.SUPERIORITY: f"one-sided {ev.test}",
        Kind.NONINFERIORITY: f"non-inferiority {ev.test}",
        Kind.EQUIVALENCE: f"TOST, {ev.test}",
    }[claim.kind]
    return ev


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the p-values (``None``: no test, left out of the family)."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(ranked)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def judge(ev: Evidence, p_adjusted: float | None) -> tuple[Verdict, str]:
    """The verdict of one weighed claim and its reason in a few words."""
    claim = ev.claim
    if ev.gap is None:
        return Verdict.NOT_MEASURED, "a side has no reproduced value"
    if ev.untested_reason or ev.interval is None or p_adjusted is None:
        return Verdict.UNTESTED, ev.untested_reason or "no test"
    low, high = ev.interval
    m = claim.margin or 0.0
    if p_adjusted < ALPHA:
        return Verdict.REPRODUCED, f"{claim.condition()}; {holm_text(p_adjusted)} < {ALPHA:g}"
    if claim.kind is Kind.SUPERIORITY:
        contradicted = high < 0
    elif claim.kind is Kind.NONINFERIORITY:
        contradicted = high < -m
    else:
        contradicted = low > m or high < -m
    if contradicted:
        return Verdict.CONTRADICTED, "interval excludes the claim"
    raw = "" if ev.p_value is None or ev.p_value >= ALPHA else f" (raw p {p_value(ev.p_value)})"
    return Verdict.INCONCLUSIVE, f"{holm_text(p_adjusted)} ≥ {ALPHA:g}{raw}"


def judge_all(evidence: list[Evidence]) -> list[dict[str, Any]]:
    """Holm-adjust the family (one table's claims) and judge each: JSON-ready records."""
    adjusted = holm([ev.p_value if ev.untested_reason is None else None for ev in evidence])
    out = []
    for ev, p_adj in zip(evidence, adjusted, strict=True):
        verdict, reason = judge(ev, p_adj)
        out.append(
            {
                "kind": ev.claim.kind.value,
                "margin": ev.claim.margin,
                "n": ev.n,
                "gap": ev.gap,
                "gap_per_seed": ev.gap_per_seed,
                "paired": ev.paired,
                "test": ev.test,
                "df": ev.df,
                "sd_observed": ev.sd_observed,
                "std_floor": ev.std_floor,
                "sd_used": ev.sd_used,
                "se": ev.se,
                "t": ev.t,
                "interval": None
                if ev.interval is None
                else {"low": ev.interval[0], "high": ev.interval[1], "level": INTERVAL_LEVEL},
                "alpha": ALPHA,
                "p_value": ev.p_value,
                "p_adjusted": p_adj,
                "adjustment": "Holm, within the table",
                "verdict": verdict.value,
                "verdict_reason": reason,
            }
        )
    return out


def verdict_of(record: dict[str, Any]) -> Verdict:
    """The :class:`Verdict` a claim record carries (records from before the engine: ``not_measured``)."""
    try:
        return Verdict(record.get("verdict"))
    except ValueError:
        return Verdict.NOT_MEASURED


def count_verdicts(records: list[dict[str, Any]]) -> dict[str, int]:
    """``reproduced`` / ``measured`` / ``not_measured`` counts (plus one per verdict) over claim records."""
    verdicts = [verdict_of(r) for r in records]
    counts = {v.value: verdicts.count(v) for v in Verdict}
    counts["measured"] = len(verdicts) - counts[Verdict.NOT_MEASURED.value]
    counts["total"] = len(verdicts)
    return counts


TEST_RULE = (
    "each claim is tested on its per-seed gaps (paired by seed; Welch's t-test where the seeds are "
    f"unpaired) at alpha {ALPHA:g}: superiority by a one-sided t-test (reproduced when the lower bound > 0), "
    "equivalence by TOST (the interval inside ±margin), non-inferiority by a one-sided test (lower bound > "
    f"−margin); the interval is the two-sided {percent(INTERVAL_LEVEL)} one (each bound one-sided 95%); p-values are "
    f"Holm-adjusted within the table; {STD_FLOOR_RULE}; fewer than {MIN_SEEDS} seeds or folds per row: "
    "untested; an interval on the wrong side of the claim: contradicted; otherwise inconclusive"
)
