"""Mask R-CNN Fig. 4: the RoI head architectures as tables, read from the ``heads.json`` records that
evaluating a Mask R-CNN run writes (segbench.records; the layers of its trained model's heads)."""

from __future__ import annotations

from typing import Any

from segbench.io import read_json
from segbench.records import HEADS
from segbench.reporting.figures.base import FigureContext, MissingInput, run_record, save_html_fragment

FIGURE = "maskrcnn_fig4"


def architectures() -> list[tuple[str, str]]:
    """(run, what the paper's Figure 4 calls its head): the registry's ``figures.maskrcnn_fig4.runs``."""
    from segbench.registry import figure_runs

    return figure_runs(FIGURE)


def head_rows(ctx: FigureContext, run: str) -> tuple[str, list[dict[str, Any]]] | None:
    """(run id, rows of ``heads.json``) of the run's lowest evaluated seed, or None if none is evaluated."""
    path = run_record(ctx, run, HEADS)
    if path is None:
        return None
    record = read_json(path, "head record")
    return path.parent.name, record["rows"]


def shape_text(shape: Any) -> str:
    if shape and isinstance(shape[0], list | tuple):
        return " + ".join(shape_text(s) for s in shape)
    return " × ".join(str(d) for d in shape)


def architecture_view(run: str, title: str, rows: list[dict[str, Any]], run_id: str = "") -> dict[str, Any]:
    branches: dict[str, int] = {}
    for row in rows:
        branches[row["branch"]] = branches.get(row["branch"], 0) + int(row["params"])
    return {
        "run": run,
        "run_id": run_id or run,
        "title": title,
        "total": f"{sum(branches.values()):,}",
        "branch_totals": {b: f"{n:,}" for b, n in branches.items()},
        "rows": [
            {**row, "shape": shape_text(row["output_shape"]), "params_text": f"{row['params']:,}"}
            for row in rows
        ],
    }


def render_fig4(ctx: FigureContext) -> list[str]:
    from segbench.reporting.html import environment

    views, missing = [], []
    for run, title in architectures():
        found = head_rows(ctx, run)
        if found is None:
            missing.append(run)
        else:
            views.append(architecture_view(run, title, found[1], found[0]))
    if not views:
        raise MissingInput(
            f"no {HEADS} of runs {', '.join(missing)} under {ctx.runs_dir}; "
            "evaluate them first (segbench evaluate writes it)"
        )
    html = environment().get_template("fig4_heads.html.j2").render(architectures=views, scale=ctx.scale)
    return save_html_fragment(html, ctx.out_dir, "maskrcnn_fig4")
