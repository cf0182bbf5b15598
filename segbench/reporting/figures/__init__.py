"""The figure registry: ``FIGURES`` maps a figure name to its :class:`FigureSpec` (title, caption,
``render(ctx)``, ``inputs(scale, results)``, tables whose pages show it).

Which tables a figure illustrates and which runs it draws from are the experiment registry's
(``figures:`` in experiments.yaml, :func:`segbench.registry.figure_tables` / ``figure_runs``); this
module only knows how to draw.

The Snakefile iterates ``FIGURES`` to make one rule per figure; ``segbench report --figure NAME`` renders
one. A figure whose inputs are missing (no trained run, a module not written yet) is *skipped* with a
note in its manifest and on the report page, never a crash.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from pathlib import Path

from segbench.errors import InputError
from segbench.paths import table_file
from segbench.reporting.figures.base import (
    FigureContext,
    FigureResult,
    FigureSpec,
    MissingInput,
    write_manifest,
)
from segbench.reporting.figures.curves import render_run_metrics, render_training_curves, run_files

__all__ = [
    "FIGURES",
    "FigureContext",
    "FigureResult",
    "FigureSpec",
    "MissingInput",
    "build_figures",
    "figure_names",
    "render_figure",
    "render_figures",
]


def _lazy(module: str, function: str) -> Callable[[FigureContext], list[str]]:
    """A render function imported only when called (keeps torch out of ``import segbench.reporting``)."""

    def render(ctx: FigureContext) -> list[str]:
        return getattr(importlib.import_module(f"segbench.reporting.figures.{module}"), function)(ctx)

    render.__name__ = f"{module}.{function}"
    return render


def _table_bars(table: str, figure: str, ctx: FigureContext) -> list[str]:
    from segbench.reporting.figures.ablation import render_table_bars

    return render_table_bars(ctx, table, figure)


def _table_input(table: str, scale: str, results: Path) -> list[Path]:
    return [table_file(results, scale, table)]


def _static_specs(registry: dict) -> list[FigureSpec]:
    from segbench.registry import figure_tables

    def tables(figure: str) -> tuple[str, ...]:
        return figure_tables(figure, registry)

    return [
        FigureSpec(
            "training_curves",
            "Training curves",
            "losses over iterations from each run's train_log.jsonl",
            render_training_curves,
            lambda s, r: run_files(s, r, "train_log.jsonl"),
        ),
        FigureSpec(
            "run_metrics",
            "Metric per run",
            "each run's headline metric (AP, error, SEG), seeds (folds at a cross-validation scale) as dots",
            render_run_metrics,
            lambda s, r: run_files(s, r, "metrics.json"),
        ),
        FigureSpec(
            "maskrcnn_fig3",
            "Mask R-CNN Fig. 3: RoIAlign",
            "feature grid, RoI, 2x2 bins, 4 bilinear sampling points per bin and the pooled output, "
            "computed by segbench.ops.roi_align on conv features of a synthetic image",
            _lazy("roialign", "render_fig3"),
            tables=tables("maskrcnn_fig3"),
        ),
        FigureSpec(
            "maskrcnn_fig4",
            "Mask R-CNN Fig. 4: head architectures",
            "layers, output shapes and parameters of the C4 and FPN heads of trained runs (their heads.json)",
            _lazy("heads", "render_fig4"),
            tables=tables("maskrcnn_fig4"),
        ),
        FigureSpec(
            "maskrcnn_fig2_5",
            "Mask R-CNN Figs. 2/5: predictions",
            "masks, boxes, classes and scores on validation images from a trained run",
            _lazy("predictions", "render_instances"),
            tables=tables("maskrcnn_fig2_5"),
        ),
        FigureSpec(
            "em_maskrcnn_predictions",
            "Mask R-CNN on the EM cells: predictions",
            "masks, boxes and scores of a run of table em_maskrcnn on held-out crops of its fold "
            "(the cells of the ISBI 2012 stack as instances)",
            _lazy("predictions", "render_em_instances"),
            tables=tables("em_maskrcnn_predictions"),
        ),
        FigureSpec(
            "maskrcnn_fig6",
            "Mask R-CNN Fig. 6: overlapping objects",
            "validation images with the most overlapping instances: ground truth (top) and the "
            "ResNet-101-FPN run's masks (bottom); the paper's FCIS+++ row is not reproduced",
            _lazy("predictions", "render_overlaps"),
            tables=tables("maskrcnn_fig6"),
        ),
        FigureSpec(
            "maskrcnn_fig7",
            "Mask R-CNN Fig. 7: keypoints",
            "keypoints, skeleton and person mask on validation images from a trained run",
            _lazy("predictions", "render_keypoints"),
            tables=tables("maskrcnn_fig7"),
        ),
        FigureSpec(
            "unet_fig2",
            "U-Net Fig. 2: overlap-tile strategy",
            "a U-Net run's input tile, mirrored border and output region (its overlap_tile.json) on an EM "
            "image of the scale's data (a held-out slice of the real ISBI 2012 stack where the scale uses it, "
            "else a generated one)",
            _lazy("unet", "render_fig2"),
            tables=tables("unet_fig2"),
        ),
        FigureSpec(
            "unet_fig3",
            "U-Net Fig. 3: weight map",
            "raw image, ground-truth overlay, mask and pixel-wise loss weight map, on the scale's data (a "
            "held-out image of its real dataset where it has one, else a generated DIC frame)",
            _lazy("unet", "render_fig3"),
            tables=tables("unet_fig3"),
        ),
        FigureSpec(
            "isbi_predictions",
            "ISBI 2012: held-out predictions and their errors per slice",
            "raw image, predicted P(cell) and the prediction thresholded at the run's warping-error "
            "threshold against the ground truth, on held-out slices of a U-Net run of the table and the "
            "sliding-window CNN run of the same fold (seed); each panel titled with that slice's warping, "
            "Rand and pixel error at the run's thresholds (metrics.json per_slice), the title with the "
            "run's errors over all its held-out slices",
            _lazy("isbi", "render_isbi_predictions"),
            tables=tables("isbi_predictions"),
        ),
        FigureSpec(
            "unet_fig4",
            "U-Net Fig. 4: cell segmentation results",
            "raw image, prediction and ground truth on the cell tracking data from a trained run",
            _lazy("predictions", "render_cells"),
            tables=tables("unet_fig4"),
        ),
    ]


def _table_specs(registry: dict) -> list[FigureSpec]:
    """One bar chart per registry table with reproduced rows (``bars_<table>``)."""
    from segbench.registry import row_runs

    specs = []
    for name, table in registry["tables"].items():
        if any(row_runs(row) for row in table["rows"]):
            figure = f"bars_{name}"
            specs.append(
                FigureSpec(
                    figure,
                    f"{name}: paper vs reproduced",
                    "bars: paper (hatched) and reproduced mean ± std over seeds (dots: seeds)",
                    partial(_table_bars, name, figure),
                    partial(_table_input, name),
                    tables=(name,),
                    on_index=False,
                )
            )
    return specs


def build_figures(registry: dict | None = None) -> dict[str, FigureSpec]:
    """Every figure's spec for ``registry`` (default: the loaded registry; tests pass a renamed copy)."""
    from segbench.registry import load_registry

    reg = registry or load_registry()
    return {spec.name: spec for spec in _static_specs(reg) + _table_specs(reg)}


FIGURES: dict[str, FigureSpec] = build_figures()


def figure_names() -> list[str]:
    return list(FIGURES)


def render_figure(name: str, ctx: FigureContext) -> FigureResult:
    """Render one figure and write its manifest; missing inputs give ``status="skipped"`` with a note,
    any other error ``status="failed"`` with the error (the report shows both)."""
    if name not in FIGURES:
        raise InputError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    spec = FIGURES[name]
    result = FigureResult(
        spec.name, spec.title, spec.caption, "ok", tables=list(spec.tables), on_index=spec.on_index
    )
    try:
        files = spec.render(ctx)
    except MissingInput as exc:
        result.status, result.note = "skipped", str(exc)
    except ImportError as exc:
        result.status, result.note = "skipped", f"needs a module not available yet ({exc})"
    except Exception as exc:  # a report never crashes on one figure; the page shows the failure
        result.status, result.note = "failed", f"{type(exc).__name__}: {exc}"
    else:
        result.files = [f for f in files if not f.endswith(".html")]
        result.html = next((f for f in files if f.endswith(".html")), None)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(result, ctx.out_dir)
    return result


def render_figures(ctx: FigureContext, names: list[str] | None = None) -> list[FigureResult]:
    return [render_figure(name, ctx) for name in (names or figure_names())]
