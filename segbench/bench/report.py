"""``reports/bench/index.html``: every ``results/bench/*.json`` as one table each, with device, threads,
command and commit. Rendered by the report's Jinja2 environment (autoescape on, so every string from a
result file is shown as text) with its inlined stylesheet; the page works offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.io import read_json, write_text_atomic
from segbench.names import check_links
from segbench.paths import REPO_ROOT, bench_report_dir

NOT_RECORDED = "not recorded"
DESCRIPTION = "speed and memory benchmarks; the figures depend on the machine and its load"


def default_report_dir() -> Path:
    return bench_report_dir()


def load_results(results: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every bench result under ``results``, in suite order, then by device tag."""
    from segbench.bench import MODULES

    found = []
    for path in sorted(results.glob("*.json")):
        record = read_json(path, "benchmark result")
        if not isinstance(record, dict) or "suite" not in record or "rows" not in record:
            raise InputError(
                f"{path}: not a segbench bench result (no suite/rows); rerun segbench bench SUITE"
            )
        found.append((path, record))
    rank = {name: i for i, name in enumerate(MODULES)}
    return sorted(
        found, key=lambda pr: (rank.get(pr[1]["suite"], len(rank)), str(pr[1].get("device_tag")), pr[0].name)
    )


def portable(value: Any) -> Any:
    """``value`` with every absolute path made machine-independent: relative to the repository where it
    lies inside it, else ``<data root>/...`` under a data directory, else its last two components."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    if isinstance(value, str) and value.startswith("/") and " " not in value:
        path = Path(value)
        if REPO_ROOT in path.parents:
            return path.relative_to(REPO_ROOT).as_posix()
        parts = path.parts
        if "data" in parts:
            return "<data root>/" + "/".join(parts[len(parts) - parts[::-1].index("data") :])
        return ".../" + "/".join(parts[-2:])
    return value


def result_view(path: Path, record: dict[str, Any], page_dir: Path) -> dict[str, Any]:
    from segbench.bench import table_cells
    from segbench.reporting.figures.bench import record_timings
    from segbench.reporting.view import url_between

    prov = record.get("provenance") or {}
    versions = prov.get("package_versions") or {}
    labels, rows = table_cells(record)
    return {
        "anchor": f"bench-{path.stem}",
        "file": path.name,
        "href": url_between(path, page_dir),
        "suite": record["suite"],
        "title": _title(record),
        "status": record.get("status", "ok"),
        "reason": record.get("reason"),
        "device": record.get("device"),
        "device_name": record.get("device_name"),
        "device_tag": record.get("device_tag"),
        "threads": record.get("threads"),
        "command": " ".join(
            portable(word) for word in str(record.get("command") or "(not recorded)").split(" ")
        ),
        "commit": prov.get("git_commit", "unknown"),
        "created": prov.get("created_utc"),
        "wall_time_s": prov.get("wall_time_s"),
        "versions": ", ".join(
            f"{k} {versions[k]}" for k in ("torch", "torchvision", "numpy") if k in versions
        ),
        "host": prov.get("host"),
        "settings": json.dumps(portable(record.get("settings")), sort_keys=True, default=str),
        "labels": labels,
        "rows": [[{"text": text, "num": num} for text, num in row] for row in rows],
        "notes": record.get("notes") or [],
        "timings": [
            {
                "what": t["what"],
                "impl": t["impl"],
                "reference": t["reference"],
                **{k: spread_text(t[k], t["unit"]) for k in ("min", "median", "max")},
                "n": t["n"] if t["n"] is not None else NOT_RECORDED,
            }
            for t in record_timings(record)
        ],
        "chart": None,
    }


def spread_text(value: Any, unit: str) -> str:
    """A timing as the spread table shows it (``12.3 ms``); "not recorded" where an older file lacks it."""
    return NOT_RECORDED if value is None else f"{value:.4g} {unit}"


def render_chart(view: dict[str, Any], record: dict[str, Any], page_dir: Path) -> None:
    """Draw the result's timing chart into ``<page_dir>/figures`` and point the view at its PNG and SVG."""
    from segbench.reporting.figures.bench import record_timings, timing_chart

    stem = view["anchor"].removeprefix("bench-")
    files = timing_chart(record_timings(record), view["title"], page_dir / "figures", stem)
    if files:
        view["chart"] = {f.rsplit(".", 1)[1]: f"figures/{f}" for f in files}


def _title(record: dict[str, Any]) -> str:
    from segbench.bench import MODULES, suite_title

    if record["suite"] in MODULES and isinstance(record.get("settings"), dict):
        return suite_title(record["suite"], record["settings"])  # today's wording of the recorded settings
    return record.get("title") or record["suite"]


def build_bench_report(results: str | Path | None = None, out: str | Path | None = None) -> tuple[Path, int]:
    """Write ``<out>/index.html`` from ``<results>/*.json``; returns (page, number of result files)."""
    from segbench.bench import default_results_dir
    from segbench.reporting.html import environment, other_reports, stylesheet

    results_dir = Path(results) if results else default_results_dir()
    page_dir = Path(out) if out else default_report_dir()
    found = load_results(results_dir) if results_dir.is_dir() else []
    views = [result_view(p, r, page_dir) for p, r in found]
    for view, (_, record) in zip(views, found, strict=True):
        if view["status"] != "skipped":
            render_chart(view, record, page_dir)
    env = environment()
    env.globals["other_reports"] = other_reports(page_dir.parent, page_dir.name)
    html = env.get_template("bench.html.j2").render(
        results=views,
        results_dir=portable(str(results_dir.resolve())),
        css=stylesheet(),
        scale="bench",
        absolute=True,
        scale_description=DESCRIPTION,
    )
    index = page_dir / "index.html"
    write_text_atomic(index, check_links(html, index))
    return index, len(views)
