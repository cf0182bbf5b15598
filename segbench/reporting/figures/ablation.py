"""Charts of one assembled table.

* **Claims** (top, when the table states any): for each claim ``A better than B on metric`` (or ``A on par
  with B``, ``A no worse than B``, as the tick says) the
  reproduced gap (A - B, oriented so that positive means A is better; mean over seeds with the spread
  of the per-seed gaps, seeds as dots) beside the paper's gap, on one axis, each bar labelled with its
  value. At the mini scale the absolute values are an order of magnitude below the paper's, but the
  gaps are comparable: this panel is what answers "does the paper's claim hold here".
* **Absolute values** (below, one panel per column): the reproduced mean ± std over seeds (dots: seeds)
  beside the paper's value. Where the paper's absolute values are not expected (smoke, mini) the paper's
  bars get their own right-hand axis, so the reproduced bars are not flattened against them.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from segbench.io import read_json
from segbench.reporting.figures.base import FigureContext, MissingInput, new_figure, plain, save_matplotlib
from segbench.reporting.view import scale_is_absolute

PAPER_STYLE = {"color": "#bbbbbb", "hatch": "//", "edgecolor": "#666666"}
OURS_COLOUR = "C0"


def claim_kind_note(claim: dict[str, Any]) -> str:
    """What an equivalence or no-worse claim tests, for its tick: a gap > 0 is not what it claims."""
    kind = claim.get("kind", "better")
    if kind == "equivalent":
        return f"; on par: |gap| <= {float(claim['margin']):g}"
    if kind == "noninferior":
        return "; no worse than"
    return ""


def table_json(results: Path, scale: str, table: str) -> Path:
    return results / scale / "tables" / f"{table}.json"


def measured_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in table["rows"] if not r.get("reference_only")]


def unit(table: dict[str, Any], column: str) -> str:
    """The axis unit of a column: COCO AP and AR in percent; U-Net's error rates and IoU are fractions."""
    key = table.get("metrics", {}).get(column, "")
    if key.startswith(("segm.", "bbox.", "keypoints.")):
        return "AR, %" if key.rpartition(".")[2].startswith("AR") else "AP, %"
    if key.startswith("ctc."):
        return "IoU, fraction"
    return "fraction, lower is better" if table.get("lower_is_better") else "fraction"


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points (about 0.55 em per char)."""
    chars = max(20, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _label_bars(
    ax: Any,
    bars: Any,
    values: list[float | None],
    spec: str,
    errors: list[float] | None = None,
    seeds: list[list[float]] | None = None,
) -> None:
    """Each bar's value written above it (beyond its error bar and seed dots)."""
    for i, (bar, value) in enumerate(zip(bars, values, strict=True)):
        if value is None or not math.isfinite(value):
            continue
        reach = [
            value + (errors[i] if errors else 0.0) if value >= 0 else value - (errors[i] if errors else 0.0)
        ]
        reach += seeds[i] if seeds else []
        at = max(reach) if value >= 0 else min(reach)
        ax.annotate(
            format(value, spec),
            (bar.get_x() + bar.get_width() / 2, at),
            xytext=(0, 3 if value >= 0 else -3),
            textcoords="offset points",
            ha="center",
            va="bottom" if value >= 0 else "top",
            fontsize=7,
        )


def claims_panel(ax: Any, table: dict[str, Any], claims: list[dict[str, Any]], spec: str) -> None:
    labels = {r["id"]: r["label"] for r in table["rows"]}
    xs = list(range(len(claims)))
    gaps = [c["gap"] for c in claims]
    spread = [c.get("gap_std") or 0.0 for c in claims]
    paper = [c.get("paper_gap") for c in claims]
    ours = ax.bar(
        [x + 0.2 for x in xs],
        [_nan(g) for g in gaps],
        width=0.4,
        yerr=spread,
        capsize=3,
        color=OURS_COLOUR,
        label=f"reproduced gap ({table['scale']}; ± spread over seeds)",
    )
    per_seed = [[v for v in c.get("gap_per_seed") or [] if v is not None] for c in claims]
    for x, seeds in zip(xs, per_seed, strict=True):
        ax.scatter([x + 0.2] * len(seeds), seeds, color="k", s=7, zorder=3)
    _label_bars(ax, ours, gaps, "+" + spec, spread, per_seed)
    if any(p is not None for p in paper):
        theirs = ax.bar(
            [x - 0.2 for x in xs], [_nan(p) for p in paper], width=0.4, label="paper's gap", **PAPER_STYLE
        )
        _label_bars(ax, theirs, paper, "+" + spec)
    for x, p in zip(xs, paper, strict=True):
        if p is None:
            ax.annotate(
                "paper: –\n(our baseline)",
                (x - 0.2, 0),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6,
                color="#666666",
            )
    ax.axhline(0, color="k", lw=0.6)
    ticks = [
        wrap(
            f"{labels.get(c['better'], c['better'])} − {labels.get(c['worse'], c['worse'])} "
            f"({c['metric']}{claim_kind_note(c)}): {c.get('verdict', '')}",
            2.2,
            7,
        )
        for c in claims
    ]
    ax.set_xticks(xs, [plain(t) for t in ticks], fontsize=7)
    units = sorted({unit(table, c["metric"]) for c in claims})
    better = "lower error" if table.get("lower_is_better") else "higher"
    ax.set_ylabel(wrap(f"gap, A − B ({'; '.join(units)}); > 0: A {better}", 2.6, 8), fontsize=8)
    ax.set_title("The claims: gap between the rows, reproduced and the paper's", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    top = max(
        [abs(v) + s for v, s in zip([_nan(g) for g in gaps], spread, strict=True) if math.isfinite(v)]
        + [abs(p) for p in paper if p is not None]
        + [1e-12]
    )
    ax.set_ylim(
        min(0.0, *[_nan(g) - s for g, s in zip(gaps, spread, strict=True) if g is not None]) - 0.15 * top,
        1.25 * top,
    )
    ax.legend(fontsize=7, frameon=False, loc="upper left")


def same_magnitude(paper: list[float | None], ours: list[float | None]) -> bool:
    """Whether the paper's and the reproduced values fit one axis (largest magnitudes within 3x), as the
    gains of a difference table do even at the mini scale."""
    p = max((abs(v) for v in paper if v is not None), default=0.0)
    o = max((abs(v) for v in ours if v is not None), default=0.0)
    return p == 0.0 or o == 0.0 or 1 / 3 <= p / o <= 3


def absolute_panel(
    ax: Any,
    table: dict[str, Any],
    rows: list[dict[str, Any]],
    col: str,
    absolute: bool,
    spec: str,
    label_width: float,
) -> Any:
    xs = list(range(len(rows)))
    cells = [r["values"][col] for r in rows]
    paper = [c["paper"] for c in cells]
    absolute = absolute or same_magnitude(paper, [c["mean"] for c in cells])
    paper_ax = ax if absolute else ax.twinx()
    if any(p is not None for p in paper):
        paper_ax.bar([x - 0.2 for x in xs], [_nan(p) for p in paper], width=0.4, label="paper", **PAPER_STYLE)
    mean = [c["mean"] for c in cells]
    errors = [c["std"] or 0.0 for c in cells]
    bars = ax.bar(
        [x + 0.2 for x in xs],
        [_nan(m) for m in mean],
        width=0.4,
        yerr=errors,
        capsize=3,
        color=OURS_COLOUR,
        label="reproduced (mean ± std)",
    )
    per_seed = [[v for v in c.get("per_seed", []) if v is not None] for c in cells]
    for x, seeds in zip(xs, per_seed, strict=True):
        ax.scatter([x + 0.2] * len(seeds), seeds, color="k", s=7, zorder=3)
    _label_bars(ax, bars, mean, spec, errors, per_seed)
    ax.margins(y=0.12)
    u = unit(table, col)
    ax.set_title(col, fontsize=9)
    ax.set_ylabel(
        f"{col} ({u})" if absolute else f"reproduced {col} ({u}, {table['scale']})",
        fontsize=8,
        color="k" if absolute else OURS_COLOUR,
    )
    if not absolute:
        paper_ax.set_ylabel(f"paper {col} ({u})", fontsize=8, color="#555555")
        paper_ax.tick_params(axis="y", labelsize=7, colors="#555555")
        paper_ax.set_ylim(bottom=0)
    ax.set_xticks(xs, [plain(wrap(r["label"], label_width, 6.5)) for r in rows], fontsize=6.5)
    ax.tick_params(axis="y", labelsize=7)
    ax.axhline(0, color="k", lw=0.5)
    return paper_ax


def render_table_bars(ctx: FigureContext, table_name: str, figure_name: str) -> list[str]:
    path = table_json(ctx.results, ctx.scale, table_name)
    if not path.is_file():
        raise MissingInput(f"{path.name} not assembled yet (segbench table {table_name} --scale {ctx.scale})")
    table = read_json(path, "table JSON")
    rows = measured_rows(table)
    if not rows:
        raise MissingInput(f"{table_name} has no reproduced rows")
    spec = ".3g" if table.get("paper") == "unet" else ".1f"
    absolute = scale_is_absolute(ctx.scale)
    claims = [d for d in table.get("directions", []) if d.get("gap") is not None]
    columns = table["columns"]
    ncols = min(len(columns), 3)
    nrows_abs = (len(columns) + ncols - 1) // ncols
    panel_w = max(3.6, 0.9 * len(rows) + 1.6)
    width = max(7.0, panel_w * ncols)
    claim_h = 3.6 if claims else 0.0
    fig = new_figure(width, claim_h + 3.4 * nrows_abs + 0.9)
    heights = ([claim_h] if claims else []) + [3.4] * nrows_abs
    grid = fig.add_gridspec(len(heights), ncols, height_ratios=heights)
    if claims:
        claims_panel(fig.add_subplot(grid[0, :]), table, claims, spec)
    first = 1 if claims else 0
    handles: dict[str, Any] = {}
    for i, col in enumerate(columns):
        ax = fig.add_subplot(grid[first + i // ncols, i % ncols])
        paper_ax = absolute_panel(
            ax, table, rows, col, absolute, spec, 0.8 * (width / ncols - 1.0) / len(rows)
        )
        for a in dict.fromkeys([paper_ax, ax]):  # ordered: the same legend on every render
            for handle, label in zip(*a.get_legend_handles_labels(), strict=True):
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
