"""Bar charts of one assembled table: the paper's value beside the reproduced mean ± std over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbench.io import read_json
from segbench.reporting.figures.base import FigureContext, MissingInput, new_figure, plain, save_matplotlib
from segbench.reporting.view import scale_is_absolute


def table_json(results: Path, scale: str, table: str) -> Path:
    return results / scale / "tables" / f"{table}.json"


def measured_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in table["rows"] if not r.get("reference_only")]


def render_table_bars(ctx: FigureContext, table_name: str, figure_name: str) -> list[str]:
    path = table_json(ctx.results, ctx.scale, table_name)
    if not path.is_file():
        raise MissingInput(f"{path.name} not assembled yet (segbench table {table_name} --scale {ctx.scale})")
    table = read_json(path, "table JSON")
    rows = measured_rows(table)
    if not rows:
        raise MissingInput(f"{table_name} has no reproduced rows")
    columns = table["columns"]
    fig = new_figure(max(4.0, 0.55 * len(rows) + 1.2) * min(len(columns), 3), 3.0 * ((len(columns) + 2) // 3))
    axes = fig.subplots((len(columns) + 2) // 3, min(len(columns), 3), squeeze=False).ravel()
    xs = range(len(rows))
    for ax, col in zip(axes, columns, strict=False):
        cells = [r["values"][col] for r in rows]
        paper = [c["paper"] if c["paper"] is not None else float("nan") for c in cells]
        mean = [c["mean"] if c["mean"] is not None else float("nan") for c in cells]
        std = [c["std"] or 0.0 for c in cells]
        ax.bar([x - 0.2 for x in xs], paper, width=0.4, color="#bbbbbb", hatch="//", edgecolor="#666666",
               label="paper")
        ax.bar([x + 0.2 for x in xs], mean, width=0.4, yerr=std, capsize=3, color="C0",
               label="reproduced (mean ± std)")
        for x, c in zip(xs, cells, strict=True):
            seeds = [v for v in c.get("per_seed", []) if v is not None]
            ax.scatter([x + 0.2] * len(seeds), seeds, color="k", s=7, zorder=3)
        ax.set_title(col, fontsize=9)
        ax.set_xticks(list(xs), [plain(r["label"]) for r in rows], rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.axhline(0, color="k", lw=0.5)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8,
               frameon=False)
    note = "" if scale_is_absolute(ctx.scale) else " – absolute values not expected at this scale"
    fig.suptitle(f"{table_name}: {table['title']} ({ctx.scale}{note})", fontsize=10)
    return save_matplotlib(fig, ctx.out_dir, figure_name)
