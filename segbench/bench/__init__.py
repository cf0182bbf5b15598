"""Speed and memory benchmarks (``segbench bench``): one module per suite, results as JSON with provenance.

``SUITES`` maps a suite name to its function ``run(options) -> dict``: the options are the suite's
``OPTIONS`` (defaults) overlaid by what the caller gives; the dict holds ``rows`` (one dict per measured
configuration), ``columns`` (``{"key", "label", "format"}``; a dotted key reads a nested value), ``settings``,
``notes``, ``device`` and ``threads``, and ``status: "skipped"`` with a ``reason`` where the suite cannot run
(its data are absent). :func:`run_suite` runs one suite and writes ``<out>/<suite>-<device tag>.json``
atomically, with the exact command line and :func:`segbench.provenance.provenance` (git commit, package
versions, machine). :mod:`segbench.bench.report` renders every such file into one HTML page.

Timing and memory methods: :mod:`segbench.bench.timing`.
"""

from __future__ import annotations

import json
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from segbench.bench import coco_eval, isbi_metrics, maskrcnn, roi_ops, unet
from segbench.bench.timing import torch_threads
from segbench.errors import InputError
from segbench.io import write_json_atomic
from segbench.paths import bench_dir

MODULES: dict[str, ModuleType] = {
    "maskrcnn": maskrcnn,
    "unet": unet,
    "coco_eval": coco_eval,
    "isbi_metrics": isbi_metrics,
    "roi_ops": roi_ops,
}
SUITES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {name: m.run for name, m in MODULES.items()}
TORCH_THREAD_SUITES = ("maskrcnn", "unet", "roi_ops")  # --threads sets torch's intra-op threads
RESULT_FORMAT = "segbench.bench/1"

__all__ = [
    "MODULES",
    "SUITES",
    "default_results_dir",
    "device_tag",
    "format_table",
    "format_value",
    "options_for",
    "run_suite",
    "suite_options",
]


def default_results_dir() -> Path:
    return bench_dir()


def suite_module(name: str) -> ModuleType:
    if name not in MODULES:
        raise InputError(
            f"unknown benchmark suite {name!r}; choose one of {', '.join(MODULES)}, all or report"
        )
    return MODULES[name]


def suite_title(name: str, settings: dict[str, Any] | None) -> str:
    """The suite's title, from the settings where the module words it by them (``title_for``)."""
    module = suite_module(name)
    title_for = getattr(module, "title_for", None)
    return title_for(settings or {}) if title_for else module.TITLE


def suite_options(name: str) -> dict[str, Any]:
    """The options ``name`` takes, with their defaults."""
    return dict(suite_module(name).OPTIONS)


def options_for(name: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The suite's defaults overlaid by ``given``; an option the suite does not take is an error."""
    defaults = suite_options(name)
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        valid = ", ".join("--" + k.replace("_", "-") for k in defaults)
        raise InputError(f"option {flags} does not apply to suite {name}; its options: {valid}")
    return {**defaults, **given}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def device_name(device: str) -> str:
    """The GPU's name for ``cuda[:N]``; the CPU model otherwise."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_tag(device: str, name: str | None = None, amp: bool = False) -> str:
    """``cpu``, or ``cuda-<gpu name>`` (e.g. ``cuda-nvidia-h100-80gb-hbm3``); ``-amp`` for mixed precision."""
    tag = "cpu" if not device.startswith("cuda") else "cuda-" + _slug(name or device_name(device))
    return tag + ("-amp" if amp else "")


def run_suite(
    name: str,
    options: dict[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    command: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Run suite ``name`` and write ``<out>/<name>-<device tag>.json`` (default out: ``results/bench``)."""
    from segbench.provenance import provenance

    opts = options_for(name, options)
    threads = opts.get("threads") if name in TORCH_THREAD_SUITES else None
    start = time.perf_counter()
    with torch_threads(threads):
        result = SUITES[name](opts)
    wall = time.perf_counter() - start
    device = str(result.get("device", "cpu"))
    dev_name = device_name(device)
    settings = result.get("settings", opts)
    record = {
        "format": RESULT_FORMAT,
        "suite": name,
        "title": suite_title(name, settings),
        "status": result.get("status", "ok"),
        "reason": result.get("reason"),
        "device": device,
        "device_name": dev_name,
        "device_tag": device_tag(device, dev_name, bool(settings.get("amp"))),
        "threads": result.get("threads"),
        "command": command,
        "settings": settings,
        "columns": result.get("columns", []),
        "rows": result.get("rows", []),
        "notes": result.get("notes", []),
        "provenance": provenance(
            {"suite": name, "settings": settings}, wall_time_s=wall, scale=result.get("scale")
        ),
    }
    path = Path(out) if out else default_results_dir()
    target = path / f"{name}-{record['device_tag']}.json"
    write_json_atomic(target, record)
    return target, record


# -- formatting shared by the terminal table and the report page ------------------------------------------
def cell_value(row: dict[str, Any], key: str) -> Any:
    """``row[key]``; a dotted key walks nested dicts (``reference.train_img_s``); None where absent."""
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def format_value(value: Any, fmt: str | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        return format(value, fmt) if fmt else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table_cells(
    record: dict[str, Any], terminal: bool = False
) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """(labels, rows of (text, is_number)) of a result record's table (``terminal``: without the columns
    marked ``"terminal": false``, which only the report page shows)."""
    columns = [c for c in record.get("columns") or [] if not terminal or c.get("terminal", True)]
    labels = [c["label"] for c in columns]
    rows = []
    for row in record.get("rows") or []:
        cells = []
        for c in columns:
            value = cell_value(row, c["key"])
            cells.append((format_value(value, c.get("format")), is_number(value)))
        rows.append(cells)
    return labels, rows


def format_table(record: dict[str, Any]) -> str:
    """A plain-text table of a result record, with its device, threads and status."""
    head = (
        f"{record['suite']} on {record['device']} ({record['device_name']}), threads {record['threads']}"
        f" - {record['title']}"
    )
    if record.get("status") == "skipped":
        return f"{head}\nskipped: {record.get('reason')}"
    labels, rows = table_cells(record, terminal=True)
    widths = [max([len(label)] + [len(r[i][0]) for r in rows]) for i, label in enumerate(labels)]
    lines = [head, "  ".join(label.ljust(w) for label, w in zip(labels, widths, strict=True))]
    for r in rows:
        lines.append(
            "  ".join(
                text.rjust(w) if num else text.ljust(w) for (text, num), w in zip(r, widths, strict=True)
            )
        )
    lines += [f"note: {n}" for n in record.get("notes") or []]
    return "\n".join(lines)
