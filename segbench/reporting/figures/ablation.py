"""Charts of one assembled table.

* **Claims** (top, when the table states any): for each claim ``A better than B on metric`` (or ``A on par
  with B``, ``A no worse than B``, as the tick says) the reproduced gap, oriented so that a positive gap is
  the claim's direction, as a bar coloured by the claim's verdict (green reproduced, amber inconclusive,
  red contradicted, grey untested or not measured) with the claim's interval as its error bar and each
  seed's gap as a dot, beside the paper's gap, on one axis; equivalence and no-worse claims show their
  margin as dashed lines. The tick names the verdict (with the Holm-adjusted p) and, marked ⚠, the first
  caveat. Where the metrics' gaps differ by more than :data:`LOG_RATIO` x (U-Net's warping against Rand
  error) each metric gets its own claims axis. At the mini scale the absolute values are an order of magnitude below the paper's, but the gaps
  are comparable: this panel is what answers "does the paper's claim hold here".
* **Absolute values** (below, one panel per column): the reproduced mean ± std over seeds (dots: seeds)
  beside the paper's value, both on one y axis, never inverted: a larger value is always a taller bar,
  and the axis label and the panel's corner say whether lower or higher is better. Where the plotted
  values span more than :data:`LOG_RATIO` x (the paper's absolute values next to a mini run's), the axis
  is logarithmic (and says so), the bars standing on a common baseline at least a decade below the smallest value.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segbench.formatting import (
    VERDICT_WORDS,
    MetricKind,
    axis_unit,
    holm_text,
    percent,
    table_kind,
    verdict_words,
)
from segbench.io import read_json
from segbench.paths import table_file
from segbench.reporting.figures.base import FigureContext, MissingInput, new_figure, plain, save_matplotlib
from segbench.reporting.view import scale_is_absolute

PAPER_STYLE = {"color": "#bbbbbb", "hatch": "//", "edgecolor": "#666666"}
OURS_COLOUR = "C0"
CLAIMS_TITLE = "The claims: gap between the rows, reproduced and the paper's"
LOG_RATIO = 10.0  # largest / smallest positive plotted value beyond which an absolute panel is log-scaled

GREY = "#9e9e9e"
#: The colour of a reproduced gap by the claim's ``verdict`` (a value the claims engine writes); a record
#: without one of these (an old table JSON) is grey.
VERDICT_COLOURS = {
    "reproduced": "#2e7d32",
    "inconclusive": "#f9a825",
    "contradicted": "#c62828",
    "untested": GREY,
    "not_measured": GREY,
}
#: The claims panel's colour key, in this order on every chart.
VERDICT_LEGEND = (
    *((VERDICT_WORDS[v], VERDICT_COLOURS[v]) for v in ("reproduced", "inconclusive", "contradicted")),
    (f"{VERDICT_WORDS['untested']} / {VERDICT_WORDS['not_measured']}", GREY),
)
EQUIVALENCE_KINDS = ("equivalence", "equivalent")  # the claims engine's name, and the older tables'
NONINFERIORITY_KINDS = ("noninferiority", "noninferior")


def claim_kind_note(claim: dict[str, Any]) -> str:
    """What an equivalence or no-worse claim tests, for its tick: a gap > 0 is not what it claims."""
    kind = claim.get("kind") or "superiority"
    margin = claim.get("margin")
    if kind in EQUIVALENCE_KINDS:
        return f"; on par: |gap| <= {float(margin):g}" if margin is not None else "; on par"
    if kind in NONINFERIORITY_KINDS:
        return f"; no worse than: gap >= -{float(margin):g}" if margin is not None else "; no worse than"
    return ""


def table_json(results: Path, scale: str, table: str) -> Path:
    return table_file(results, scale, table)


def measured_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in table["rows"] if not r.get("reference_only")]


def unit(table: dict[str, Any], column: str) -> str:
    """The axis unit of a column: COCO AP and AR in percent; U-Net's error rates and IoU are fractions."""
    return axis_unit(table.get("metrics", {}).get(column, ""))


def better_words(table: dict[str, Any]) -> tuple[str, str]:
    """``("lower is better", "↓")`` or ``("higher is better", "↑")``: which way the table's metrics point."""
    return ("lower is better", "↓") if table.get("lower_is_better") else ("higher is better", "↑")


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points (about 0.55 em per char)."""
    chars = max(20, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _finite(values: list[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _label_bars(
    ax: Any,
    bars: Any,
    values: list[float | None],
    kind: MetricKind,
    reach: list[list[float]] | None = None,
    *,
    signed: bool = False,
    paper: bool = False,
    **text: Any,
) -> None:
    """Each bar's value written beyond its end, and beyond the points in ``reach`` (its error bar's end,
    its seeds) on that side."""
    text.setdefault("fontsize", 7)
    for i, (bar, value) in enumerate(zip(bars, values, strict=True)):
        if value is None or not math.isfinite(value):
            continue
        points = [value, *(reach[i] if reach else [])]
        # beyond the bar's end too: on a log axis a zero value's bar ends at the baseline, not at 0
        at = max([*points, bar.get_y() + bar.get_height()]) if value >= 0 else min(points)
        ax.annotate(
            kind.paper(value) if paper else kind.value(value, signed=signed),
            (bar.get_x() + bar.get_width() / 2, at),
            xytext=(0, 3 if value >= 0 else -3),
            textcoords="offset points",
            ha="center",
            va="bottom" if value >= 0 else "top",
            **text,
        )


def claim_interval(claim: dict[str, Any]) -> tuple[float, float] | None:
    """The claim's interval of the gap as ``(low, high)``; None where it has none (or only one bound)."""
    interval = claim.get("interval")
    if not isinstance(interval, dict) or interval.get("low") is None or interval.get("high") is None:
        return None
    return float(interval["low"]), float(interval["high"])


def verdict_colour(claim: dict[str, Any]) -> str:
    return VERDICT_COLOURS.get(str(claim.get("verdict")), GREY)


def tick_verdict(claim: dict[str, Any]) -> str:
    """The claim's verdict for its tick, with the Holm-adjusted p where the claim was tested."""
    words = verdict_words(claim.get("verdict"))
    if claim.get("p_adjusted") is not None:
        words += f" ({holm_text(float(claim['p_adjusted']))})"
    return words


def claim_tick(claim: dict[str, Any], labels: dict[str, str], width_in: float) -> str:
    """A claim's tick: the two rows and metric, the verdict, and (⚠) the first caveat, shortened."""
    a, b = labels.get(claim["better"], claim["better"]), labels.get(claim["worse"], claim["worse"])
    lines = [
        wrap(f"{a} vs {b} ({claim['metric']}{claim_kind_note(claim)})", width_in, 7),
        wrap(tick_verdict(claim), width_in, 7),
    ]
    caveats = [str(c) for c in claim.get("caveats") or [] if c]
    if caveats:
        more = f" (+{len(caveats) - 1} more)" if len(caveats) > 1 else ""
        lines.append(wrap(f"⚠ {textwrap.shorten(caveats[0], 70, placeholder='…')}{more}", width_in, 7))
    return plain("\n".join(lines))


def claim_extent(claim: dict[str, Any]) -> list[float]:
    """Every value a claim puts on the claims axis: its gap, the paper's, the interval, seeds, margin."""
    values = [claim.get("gap"), claim.get("paper_gap"), claim.get("margin"), *(claim_interval(claim) or ())]
    return _finite([*values, *(claim.get("gap_per_seed") or [])])


def claim_groups(claims: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The claims on one axis, or, where the metrics' gaps differ by more than :data:`LOG_RATIO` x (a
    warping error's 0.0003 beside a Rand error's 0.3), one axis per metric, so that no gap is flattened."""
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for claim in claims:
        by_metric.setdefault(str(claim.get("metric")), []).append(claim)
    sizes = [
        max((abs(v) for c in group for v in claim_extent(c)), default=0.0) for group in by_metric.values()
    ]
    positive = [v for v in sizes if v > 0]
    if len(by_metric) < 2 or not positive or max(positive) <= LOG_RATIO * min(positive):
        return [claims]
    return list(by_metric.values())


def claims_panel(
    ax: Any,
    table: dict[str, Any],
    claims: list[dict[str, Any]],
    kind: MetricKind,
    *,
    tick_width: float = 2.2,
    title: str = "",
    legend: bool = True,
) -> None:
    """The claims' gaps on ``ax``: the paper's beside the reproduced (coloured by verdict, the interval as
    error bar, seeds as dots), equivalence and no-worse margins dashed; ``legend``: the key, right of it."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    labels = {r["id"]: r["label"] for r in table["rows"]}
    xs = list(range(len(claims)))
    gaps = [c.get("gap") for c in claims]
    paper = [c.get("paper_gap") for c in claims]
    intervals = [claim_interval(c) for c in claims]
    per_seed = [_finite(c.get("gap_per_seed") or []) for c in claims]
    ours = ax.bar(
        [x + 0.2 for x in xs],
        [_nan(g) for g in gaps],
        width=0.4,
        color=[verdict_colour(c) for c in claims],
        edgecolor="#333333",
        linewidth=0.5,
    )
    level = next((c["interval"].get("level") for c in claims if claim_interval(c)), None) or 0.90
    handles: list[Any] = [
        Patch(facecolor=c, edgecolor="#333333", linewidth=0.5, label=v) for v, c in VERDICT_LEGEND
    ]
    bounded = [(x, g, iv) for x, g, iv in zip(xs, gaps, intervals, strict=True) if g is not None and iv]
    if bounded:
        handles.append(
            ax.errorbar(
                [x + 0.2 for x, _, _ in bounded],
                [g for _, g, _ in bounded],
                yerr=[
                    [max(0.0, g - low) for _, g, (low, _) in bounded],
                    [max(0.0, high - g) for _, g, (_, high) in bounded],
                ],
                fmt="none",
                ecolor="k",
                elinewidth=1.0,
                capsize=3,
                zorder=3,
                label=f"reproduced gap's {percent(level)} interval",
            )
        )
    for x, seeds in zip(xs, per_seed, strict=True):
        ax.scatter([x + 0.2] * len(seeds), seeds, color="k", s=7, zorder=4)
    if any(per_seed):
        handles.append(Line2D([], [], ls="", marker="o", color="k", markersize=3, label="one seed's gap"))
    reach = [[*(list(iv) if iv else []), *seeds] for iv, seeds in zip(intervals, per_seed, strict=True)]
    _label_bars(ax, ours, gaps, kind, reach, signed=True)
    theirs = ax.bar([x - 0.2 for x in xs], [_nan(p) for p in paper], width=0.4, **PAPER_STYLE)
    _label_bars(ax, theirs, paper, kind, signed=True, color="#555555")
    handles.append(
        Patch(
            facecolor=PAPER_STYLE["color"],
            edgecolor=PAPER_STYLE["edgecolor"],
            hatch=PAPER_STYLE["hatch"],
            label="paper's gap",
        )
    )
    for x, p, g in zip(xs, paper, gaps, strict=True):
        for missing, at, text in (
            (p is None, x - 0.2, "paper: –\n(our baseline)"),
            (g is None, x + 0.2, "not\nmeasured"),
        ):
            if missing:
                ax.annotate(
                    text,
                    (at, 0),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    color="#666666",
                )
    margins = []
    for x, c in zip(xs, claims, strict=True):
        kind, margin = c.get("kind"), c.get("margin")
        if margin is None or kind not in EQUIVALENCE_KINDS + NONINFERIORITY_KINDS:
            continue
        at = [-float(margin)] + ([float(margin)] if kind in EQUIVALENCE_KINDS else [])
        ax.hlines(at, x - 0.45, x + 0.45, colors="#444444", linestyles="--", lw=0.9, zorder=2)
        margins += at
    if margins:
        handles.append(
            Line2D([], [], color="#444444", ls="--", lw=0.9, label="margin (on par: ±m; no worse: −m)")
        )
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(xs, [claim_tick(c, labels, tick_width) for c in claims], fontsize=7)
    units = sorted({unit(table, c["metric"]) for c in claims})
    orientation = "B − A" if table.get("lower_is_better") else "A − B"
    ax.set_ylabel(
        wrap(f"gap, {orientation} ({'; '.join(units)}); > 0: A better, as claimed", 2.6, 8), fontsize=8
    )
    ax.set_title(title or CLAIMS_TITLE, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    points = _finite(gaps) + _finite(paper) + margins + [v for r in reach for v in r] + [0.0]
    low, high = min(points), max(points)
    span = (high - low) or max(abs(high), abs(low), 1e-12)
    ax.set_ylim(low - 0.15 * span, high + 0.25 * span)
    if legend:
        ax.legend(handles=handles, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))


@dataclass(frozen=True)
class AbsoluteBars:
    """What :func:`absolute_panel` drew: the paper's bars (None where the paper gives no value for the
    column), the reproduced bars, and the axis: log or linear, and the baseline the bars stand on."""

    paper: Any  # matplotlib BarContainer | None
    ours: Any  # matplotlib BarContainer
    log: bool
    bottom: float


def log_scale(values: list[float]) -> tuple[bool, float]:
    """Whether ``values`` (all plotted values: the paper's, the means, mean + std, the seeds) need a log axis
    (none negative, and the positive ones spanning more than :data:`LOG_RATIO` x), and the baseline: a
    power of ten at least a decade below the smallest positive value (0 on a linear axis)."""
    if any(v < 0 for v in values):
        return False, 0.0
    positive = [v for v in values if v > 0]
    if len(positive) < 2 or max(positive) <= LOG_RATIO * min(positive):
        return False, 0.0
    return True, 10.0 ** (math.floor(math.log10(min(positive))) - 1)


def absolute_panel(
    ax: Any,
    table: dict[str, Any],
    rows: list[dict[str, Any]],
    col: str,
    kind: MetricKind,
    label_width: float,
) -> AbsoluteBars:
    """The paper's value and the reproduced mean ± std of ``col`` per row, on one y axis (log where the
    values span more than :data:`LOG_RATIO` x); never inverted, a larger value is a taller bar."""
    xs = list(range(len(rows)))
    cells = [r["values"][col] for r in rows]
    paper = [c.get("paper") for c in cells]
    mean = [c.get("mean") for c in cells]
    errors = [c.get("std") or 0.0 for c in cells]
    per_seed = [_finite(c.get("per_seed") or []) for c in cells]
    plotted = (
        _finite(paper)
        + _finite(mean)
        + [m + s for m, s in zip(mean, errors, strict=True) if m is not None]
        + [v for seeds in per_seed for v in seeds]
    )
    log, bottom = log_scale(_finite(plotted))

    def heights(values: list[float | None]) -> list[float]:
        # on a log axis a bar spans bottom..value: its top is the value, so taller means larger
        return [_nan(v) if not log or v is None else max(float(v), bottom) - bottom for v in values]

    if log:
        ax.set_yscale("log")
    paper_bars = None
    if any(p is not None for p in paper):
        paper_bars = ax.bar(
            [x - 0.2 for x in xs], heights(paper), bottom=bottom, width=0.4, label="paper", **PAPER_STYLE
        )
        _label_bars(ax, paper_bars, paper, kind, paper=True, fontsize=6.5, color="#555555")
    low_err = [min(s, m - bottom) if log and m is not None else s for m, s in zip(mean, errors, strict=True)]
    ours = ax.bar(
        [x + 0.2 for x in xs],
        heights(mean),
        bottom=bottom,
        width=0.4,
        yerr=[[max(0.0, e) for e in low_err], errors],
        capsize=3,
        color=OURS_COLOUR,
        label="reproduced (mean ± std; dots: seeds)",
    )
    for x, seeds in zip(xs, per_seed, strict=True):
        shown = [v for v in seeds if v > 0] if log else seeds
        ax.scatter([x + 0.2] * len(shown), shown, color="k", s=7, zorder=3)
    reach = [[m + s] if m is not None else [] for m, s in zip(mean, errors, strict=True)]
    _label_bars(ax, ours, mean, kind, [r + s for r, s in zip(reach, per_seed, strict=True)])
    words, arrow = better_words(table)
    ax.set_title(col, fontsize=9)
    ax.set_title(f"{arrow} better", loc="right", fontsize=8, color="#333333")
    ax.set_ylabel(
        wrap(f"{col} ({unit(table, col)}; {words} {arrow}{'; log scale' if log else ''})", 3.0, 8),
        fontsize=8,
    )
    if log:
        top = max(plotted)
        ax.set_ylim(bottom, top * 10 ** (0.25 * math.log10(top / bottom)))  # room for the labels
    else:
        ax.margins(y=0.12)
        if all(v >= 0 for v in _finite(plotted)):
            ax.set_ylim(bottom=0)
        ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(xs, [plain(wrap(r["label"], label_width, 6.5)) for r in rows], fontsize=6.5)
    ax.tick_params(axis="y", labelsize=7)
    return AbsoluteBars(paper_bars, ours, log, bottom)


def render_table_bars(ctx: FigureContext, table_name: str, figure_name: str) -> list[str]:
    path = table_json(ctx.results, ctx.scale, table_name)
    if not path.is_file():
        raise MissingInput(f"{path.name} not assembled yet (segbench table {table_name} --scale {ctx.scale})")
    table = read_json(path, "table JSON")
    rows = measured_rows(table)
    if not rows:
        raise MissingInput(f"{table_name} has no reproduced rows")
    kind = table_kind(table)
    absolute = scale_is_absolute(ctx.scale)
    claims = list(table.get("directions") or [])
    columns = table["columns"]
    ncols = min(len(columns), 3)
    nrows_abs = (len(columns) + ncols - 1) // ncols
    panel_w = max(3.6, 0.9 * len(rows) + 1.6)
    width = max(7.0, panel_w * ncols)
    claim_h = 3.9 + (0.3 if any(c.get("caveats") for c in claims) else 0.0) if claims else 0.0
    fig = new_figure(width, claim_h + 3.4 * nrows_abs + 0.9)
    heights = ([claim_h] if claims else []) + [3.4] * nrows_abs
    grid = fig.add_gridspec(len(heights), ncols, height_ratios=heights)
    if claims:
        groups = claim_groups(claims)
        row = grid[0, :].subgridspec(1, len(groups), width_ratios=[len(g) for g in groups])
        tick_width = min(2.6, max(1.0, (width - 2.6 - 0.7 * len(groups)) / len(claims)))
        for k, group in enumerate(groups):
            claims_panel(
                fig.add_subplot(row[0, k]),
                table,
                group,
                kind,
                tick_width=tick_width,
                title=f"The claims on {group[0]['metric']}" if len(groups) > 1 else CLAIMS_TITLE,
                legend=k == len(groups) - 1,
            )
    first = 1 if claims else 0
    handles: dict[str, Any] = {}
    for i, col in enumerate(columns):
        ax = fig.add_subplot(grid[first + i // ncols, i % ncols])
        absolute_panel(ax, table, rows, col, kind, 0.8 * (width / ncols - 1.0) / len(rows))
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(
        list(handles.values()), list(handles), loc="outside lower center", ncols=2, fontsize=8, frameon=False
    )
    note = (
        ""
        if absolute
        else (
            " – absolute values not expected at this scale: compare the gaps"
            if claims
            else " – absolute values not expected at this scale"
        )
    )
    fig.suptitle(plain(wrap(f"{table_name}: {table['title']} ({ctx.scale}{note})", width, 10)), fontsize=10)
    return save_matplotlib(fig, ctx.out_dir, figure_name)
