"""The bench page's chart of one result file (``reports/bench/figures/<suite>-<device>.{png,svg}``): every
timing's median (dot) and its spread from min to max (bar), ours beside the reference implementation
measured in the same interleaved run (:func:`segbench.bench.timing.time_interleaved`).

A row records its timings under ``timings`` (:func:`segbench.bench.timing.timing_entry`). Result files
written before that recorded only medians (and some minima) in suite-specific keys: :func:`row_timings`
reads those, with what they lack (max, samples) as None, which the page and the chart show as not recorded.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segbench.bench.roi_ops import BASELINE as ROI_BASELINE
from segbench.reporting.figures.base import new_figure, plain, save_matplotlib

OURS_COLOUR, REFERENCE_COLOUR = "#2563eb", "#c2410c"
UNIT_MS = {"ms": 1.0, "s": 1e3}


def legacy_entry(
    what: str, impl: str, median: Any, minimum: Any = None, *, unit: str = "ms", reference: bool = False
) -> dict[str, Any] | None:
    """A timing entry of an older result file: its median (and min where recorded); max and samples None."""
    if not isinstance(median, int | float):
        return None
    low = minimum if isinstance(minimum, int | float) else None
    return {"what": what, "impl": impl, "reference": reference, "unit": unit, "min": low, "median": median}


def _maskrcnn(row: dict[str, Any]) -> list[dict[str, Any] | None]:
    out = []
    for impl, src, ref in (("segbench", row, False), ("torchvision", row.get("reference"), True)):
        if isinstance(src, dict):
            out += [
                legacy_entry(
                    f"{row.get('run')}: train step (ms/step)",
                    impl,
                    src.get("train_ms_per_step"),
                    src.get("train_min_ms_per_step"),
                    reference=ref,
                ),
                legacy_entry(
                    f"{row.get('run')}: inference (ms/img)",
                    impl,
                    src.get("infer_ms_per_img"),
                    src.get("infer_min_ms_per_img"),
                    reference=ref,
                ),
            ]
    return out


LEGACY: dict[str, Callable[[dict[str, Any]], list[dict[str, Any] | None]]] = {
    "maskrcnn": _maskrcnn,
    "unet": lambda row: [
        legacy_entry(f"tile {row.get('tile')} (ms/tile)", "segbench", row.get("ms_per_tile")),
        legacy_entry(f"image {row.get('image_size')} (ms/image)", "segbench", row.get("ms_per_image")),
    ],
    "coco_eval": lambda row: [
        legacy_entry(
            f"{row.get('iou_type')} evaluation (s)",
            b,
            row.get(f"{b}_s"),
            unit="s",
            reference=b == "pycocotools",
        )
        for b in ("pycocotools", "faster")
    ],
    "isbi_metrics": lambda row: [
        legacy_entry(
            f"{row.get('stack')} stack, 3 metrics (s)",
            "segbench",
            row.get("median_s"),
            row.get("min_s"),
            unit="s",
        )
    ],
    "roi_ops": lambda row: [
        legacy_entry(
            f"{row.get('features')} features: {part} (ms)",
            str(row.get("layer")),
            row.get(f"{key}_ms"),
            reference=row.get("layer") == ROI_BASELINE,
        )
        for part, key in (("forward", "fwd"), ("backward", "bwd"), ("total", "total"))
    ],
}


def row_timings(suite: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The timings of a result row: its ``timings`` where recorded, else what an older file holds."""
    recorded = row.get("timings")
    if isinstance(recorded, list):
        found = [t for t in recorded if isinstance(t, dict) and isinstance(t.get("median"), int | float)]
    else:
        found = [t for t in LEGACY.get(suite, lambda r: [])(row) if t is not None]
    return [
        {
            "min": None,
            "max": None,
            "n": None,
            "samples": None,
            "unit": "ms",
            **t,
            "reference": t.get("reference") is True,
        }
        for t in found
    ]


def record_timings(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every timing of a result record, those of one measurement together (ours beside the reference),
    in the order the rows first name them."""
    found = [t for row in record.get("rows") or [] for t in row_timings(record["suite"], row)]
    first: dict[str, int] = {}
    for t in found:
        first.setdefault(t["what"], len(first))
    return sorted(found, key=lambda t: first[t["what"]])


def timing_chart(timings: list[dict[str, Any]], title: str, out_dir: Path, name: str) -> list[str]:
    """Write the chart of ``timings`` as ``<out_dir>/<name>.{png,svg}``; returns the file names ([] when
    there is nothing to draw)."""
    if not timings:
        return []
    units = {t["unit"] for t in timings}
    unit = units.pop() if len(units) == 1 and not units - set(UNIT_MS) else "ms"

    def scaled(value: Any, t: dict[str, Any]) -> float | None:
        return None if value is None else value * UNIT_MS.get(t["unit"], 1.0) / UNIT_MS[unit]

    all_lack = all(t["max"] is None for t in timings)
    fig = new_figure(9.0, 1.1 + 0.3 * len(timings))
    ax = fig.add_subplot()
    labels = []
    for i, t in enumerate(timings):
        y, colour = -i, REFERENCE_COLOUR if t["reference"] else OURS_COLOUR
        low, mid, high = scaled(t["min"], t), scaled(t["median"], t), scaled(t["max"], t)
        if low is not None and high is not None:
            ax.hlines(y, low, high, colors=colour, linewidth=2.5, alpha=0.45)
        elif low is not None:  # an older record: min and median only, max not recorded
            ax.hlines(y, low, mid, colors=colour, linewidth=2.5, alpha=0.45, linestyles="dotted")
        ax.plot(
            [v for v in (low, high) if v is not None],
            [y] * sum(v is not None for v in (low, high)),
            "|",
            color=colour,
            markersize=9,
        )
        ax.plot([mid], [y], "o", color=colour, markersize=5)
        labels.append(
            plain(f"{t['what']} – {t['impl']}" + ("" if t["max"] is not None or all_lack else " (no max)"))
        )
    values = [v for t in timings for v in (scaled(t["min"], t), scaled(t["median"], t), scaled(t["max"], t))]
    positive = [v for v in values if v is not None and v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_xscale("log")
    ax.set_yticks([-i for i in range(len(timings))], labels, fontsize=8)
    ax.set_ylim(-len(timings) + 0.4, 0.6)
    ax.set_xlabel(
        f"time ({unit}){', log scale' if ax.get_xscale() == 'log' else ''}: dot median, bar min to max"
        + (
            "\nmax not recorded in this file: dotted bar from min to median"
            if any(t["max"] is None for t in timings)
            else ""
        )
    )
    ax.set_title("\n".join(textwrap.wrap(plain(title), 60)), fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
    kinds = [("ours", OURS_COLOUR, False), ("reference (same run)", REFERENCE_COLOUR, True)]
    shown = [(label, colour) for label, colour, ref in kinds if any(t["reference"] is ref for t in timings)]
    handles = [ax.plot([], [], "o", color=colour)[0] for _, colour in shown]
    ax.legend(handles, [label for label, _ in shown], fontsize=8, loc="best")
    return save_matplotlib(fig, out_dir, name)
