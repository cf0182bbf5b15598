"""HTML reports and figures: paper beside reproduction for every assembled table.

``build_report(scale)`` renders the figures (``FIGURES``) into ``reports/<scale>/figures/`` and writes
``reports/<scale>/index.html`` plus one page per ``results/<scale>/tables/*.json`` and one per comparison,
``results/<scale>/compare/*.json`` -> ``reports/<scale>/compare/<table>--<method>.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from segbench.paths import reports_root, results_root
from segbench.reporting.figures import FIGURES, FigureContext, FigureResult, figure_names, render_figure

if TYPE_CHECKING:
    from segbench.reporting.html import ReportPaths


def __getattr__(name: str) -> Any:
    """``ReportPaths`` and ``build_pages`` on first use: the page writer imports the claims engine (scipy),
    which the Snakefile, importing ``FIGURES`` from here at every parse, does not need."""
    if name in ("ReportPaths", "build_pages"):
        from segbench.reporting import html

        return getattr(html, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FIGURES",
    "FigureContext",
    "FigureResult",
    "ReportPaths",
    "build_report",
    "figure_context",
    "figure_names",
    "render_figure",
    "reports_root",
]


def figure_context(
    scale: str,
    results: str | Path | None = None,
    out: str | Path | None = None,
    data_root: str | Path | None = None,
) -> FigureContext:
    from segbench.paths import data_root as default_data_root

    return FigureContext(
        scale=scale,
        results=results_root(results),
        out_dir=reports_root(out) / scale / "figures",
        data_root=default_data_root(data_root),
    )


def build_report(
    scale: str,
    results: str | Path | None = None,
    out: str | Path | None = None,
    *,
    figures: list[str] | None = None,
    render: bool = True,
    data_root: str | Path | None = None,
) -> tuple[ReportPaths, list[FigureResult]]:
    """Render ``figures`` (default: all; ``render=False`` reuses the manifests on disk), then write every
    page from the tables and figure manifests on disk."""
    ctx = figure_context(scale, results, out, data_root)
    names = figures if figures is not None else figure_names()
    from segbench.reporting.html import build_pages

    rendered = [render_figure(name, ctx) for name in names] if render else []
    paths = build_pages(scale, ctx.results, reports_root(out), figure_names())
    return paths, rendered
