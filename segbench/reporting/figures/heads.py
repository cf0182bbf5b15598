"""Mask R-CNN Fig. 4: the RoI head architectures as tables, generated from built models (describe_heads)."""

from __future__ import annotations

from typing import Any

from segbench.reporting.figures.base import FigureContext, save_html_fragment

FIGURE = "maskrcnn_fig4"


def architectures() -> list[tuple[str, str]]:
    """(run, what the paper's Figure 4 calls its head): the registry's ``figures.maskrcnn_fig4.runs``."""
    from segbench.registry import figure_runs

    return figure_runs(FIGURE)


def head_rows(run: str, scale: str) -> list[dict[str, Any]]:
    """``describe_heads`` of the run's model at ``scale`` (randomly initialised: no weights downloaded)."""
    from segbench.models.maskrcnn import build_maskrcnn, describe_heads
    from segbench.registry import resolve_run

    cfg = resolve_run(run, scale)
    cfg["model"]["pretrained"] = False
    return describe_heads(build_maskrcnn(cfg))


def shape_text(shape: Any) -> str:
    if shape and isinstance(shape[0], list | tuple):
        return " + ".join(shape_text(s) for s in shape)
    return " × ".join(str(d) for d in shape)


def architecture_view(run: str, title: str, scale: str) -> dict[str, Any]:
    rows = head_rows(run, scale)
    branches: dict[str, int] = {}
    for row in rows:
        branches[row["branch"]] = branches.get(row["branch"], 0) + int(row["params"])
    return {"run": run, "title": title, "total": f"{sum(branches.values()):,}",
            "branch_totals": {b: f"{n:,}" for b, n in branches.items()},
            "rows": [{**row, "shape": shape_text(row["output_shape"]), "params_text": f"{row['params']:,}"}
                     for row in rows]}


def render_fig4(ctx: FigureContext) -> list[str]:
    from segbench.reporting.html import environment

    views = [architecture_view(run, title, ctx.scale) for run, title in architectures()]
    html = environment().get_template("fig4_heads.html.j2").render(architectures=views, scale=ctx.scale)
    return save_html_fragment(html, ctx.out_dir, "maskrcnn_fig4")
