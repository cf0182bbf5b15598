"""Build one paper table from the metrics.json of its runs, and write its JSON, CSV and Markdown.

The numbers come from :mod:`segbench.tables.aggregate` (runs loaded, seeds summarised), the claims from
:mod:`segbench.tables.claims` (tested by :mod:`segbench.claims`), the CSV and Markdown from
:mod:`segbench.tables.render`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.io import dumps, json_text, read_json, write_text_atomic
from segbench.paths import child_path, results_root, tables_dir
from segbench.provenance import provenance
from segbench.registry import (
    absolute_values,
    check_table_at_scale,
    evaluated_on,
    get_table,
    load_registry,
    row_runs,
    seeds_for_run,
)
from segbench.tables.aggregate import (
    CONVERGED_COLUMN,
    converged_cell,
    load_run_metrics,
    metric_value,
    pooled_value,
    run_source,
    score_value,
    seed_summary,
)
from segbench.tables.caveats import first_config
from segbench.tables.claims import table_claims
from segbench.tables.compute_curve import compute_curve
from segbench.tables.render import to_csv, to_markdown
from segbench.trainlog import CONVERGENCE_RULE, TRAIN_LOG, log_convergence


def assemble_table(name: str, scale: str, results: str | Path | None = None) -> dict[str, Any]:
    """The table ``name`` at ``scale`` as a JSON-ready dict."""
    registry = load_registry()
    table = get_table(name, registry)
    check_table_at_scale(name, scale, registry)
    root = results_root(results)
    cache: dict[str, list[tuple[Path, dict]]] = {}

    def seed_values(run: str, column: str) -> list[float | None]:
        if run not in cache:
            cache[run] = load_run_metrics(run, scale, root, registry)
        return [metric_value(rec["metrics"], table["metrics"][column], path) for path, rec in cache[run]]

    folds = registry["scales"][scale].get("cross_validation", {}).get("folds")

    def convergence(run: str) -> list[dict[str, Any]]:
        if run not in cache:
            cache[run] = load_run_metrics(run, scale, root, registry)
        return [
            {"run_id": path.parent.name, **log_convergence(path.parent / TRAIN_LOG)} for path, _ in cache[run]
        ]

    # scores: reported beside the columns (higher is better), never claimed; a run's own only ("run" rows)
    scores: dict[str, str] = table.get("scores") or {}

    def row_scores(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, key in scores.items():
            cell: dict[str, Any] = {"mean": None, "std": None, "n": 0, "per_seed": []}
            if "run" in row:
                cell = seed_summary(
                    [score_value(rec["metrics"], key, path) for path, rec in cache[row["run"]]]
                )
                if folds:
                    cell["pooled"] = pooled_value([rec for _, rec in cache[row["run"]]], key)
            out[name] = cell
        return out

    rows = []
    for row in table["rows"]:
        values = {}
        for col, paper in zip(table["columns"], row["paper_values"], strict=True):
            if "run" in row:
                per_seed = seed_values(row["run"], col)
            elif "column_runs" in row:
                per_seed = seed_values(row["column_runs"][col], col) if col in row["column_runs"] else []
            elif "difference" in row:
                a = seed_values(row["difference"]["minuend"], col)
                b = seed_values(row["difference"]["subtrahend"], col)
                # Paired by seed; a run with more seeds than the other contributes its first ones.
                per_seed = [
                    x - y if x is not None and y is not None else None for x, y in zip(a, b, strict=False)
                ]
            else:
                per_seed = []
            cell = seed_summary(per_seed) if per_seed else {"mean": None, "std": None, "n": 0, "per_seed": []}
            if folds and "run" in row:  # seeds are folds: also the errors of all held-out slices pooled
                cell["pooled"] = pooled_value([rec for _, rec in cache[row["run"]]], table["metrics"][col])
            cell["paper"] = paper
            cell["delta"] = (cell["mean"] - paper) if cell["mean"] is not None and paper is not None else None
            values[col] = cell
        rows.append(
            {
                "id": row["id"],
                "label": row["label"],
                "runs": row_runs(row),
                "reference_only": not row_runs(row),
                "values": values,
                **({"scores": row_scores(row)} if scores else {}),
                CONVERGED_COLUMN: converged_cell([s for run in row_runs(row) for s in convergence(run)]),
            }
        )

    runs_used = sorted({r for row in table["rows"] for r in row_runs(row)})
    # per run instance: its evaluation's and training's commit and device, and the metrics file (and its
    # sha256) this table was assembled from: a later retrain changes it (segbench status)
    run_provenance = {
        rec["run_id"]: run_source(path, rec, root) for run in runs_used for path, rec in cache.get(run, [])
    }
    wall = sum((p["train_wall_time_s"] or 0) + (p["eval_wall_time_s"] or 0) for p in run_provenance.values())
    seeds = sorted({s for run in runs_used for s in seeds_for_run(run, scale, registry)})
    # the paper's errors are a target (2x the paper) only where the scale's values are absolute (real data)
    curve = table.get("compute_curve") if absolute_values(scale, registry) else None
    return {
        "table": name,
        "title": table["title"],
        "paper": table["paper"],
        "citation": registry["papers"][table["paper"]]["citation"],
        "scale": scale,
        "scale_description": registry["scales"][scale]["description"],
        "cross_validation_folds": folds,
        "split": table.get("split"),
        "evaluated_on": evaluated_on(name, scale, registry),
        "note": table.get("note"),
        "columns": table["columns"],
        "metrics": table["metrics"],
        "lower_is_better": bool(table.get("lower_is_better", False)),
        **(
            {
                "scores": scores,
                # run instances whose metrics.json lacks a score: evaluated before it existed
                "scores_missing": sorted(
                    rec["run_id"]
                    for run in runs_used
                    for path, rec in cache.get(run, [])
                    if any(score_value(rec["metrics"], key, path) is None for key in scores.values())
                ),
            }
            if scores
            else {}
        ),
        "convergence_rule": CONVERGENCE_RULE,
        "rows": rows,
        "directions": table_claims(
            table,
            rows,
            # the caveats' origins: where each run instance was trained, not where it was last evaluated
            {
                run: [
                    {**rec, "trained_at": run_provenance[rec["run_id"]]["trained_at"]}
                    for _, rec in cache.get(run, [])
                ]
                for run in runs_used
            },
            {
                run: cfg
                for run in runs_used
                if (cfg := first_config(run, scale, root, seeds_for_run(run, scale, registry))) is not None
            },
        ),
        **({"compute_curve": compute_curve(curve, table, rows, scale, registry)} if curve else {}),
        "runs": run_provenance,
        "provenance": provenance(
            {"table": name, "runs": {k: v["config_hash"] for k, v in run_provenance.items()}},
            seeds=seeds,
            wall_time_s=wall,
            scale=scale,
        ),
    }


#: The fields of a table's own ``provenance`` block that say when and where it was assembled, not what it
#: holds: a re-assembly that differs only in them leaves the written files alone (the runs' provenance,
#: under ``runs``, is content).
VOLATILE_PROVENANCE = (
    "created_utc",
    "git_commit",
    "host",
    "device",
    "machine_signature",
    "machine_signature_hash",
    "package_versions",
)


def table_content(table: dict[str, Any]) -> str:
    """``table`` as canonical JSON without :data:`VOLATILE_PROVENANCE`: equal for two assemblies of the
    same runs, whenever and wherever they were made."""
    data = json.loads(json_text(table))
    if isinstance(data.get("provenance"), dict):
        for key in VOLATILE_PROVENANCE:
            data["provenance"].pop(key, None)
    return dumps(data, sort_keys=True)


def in_order_of(recorded: Any, fresh: Any) -> Any:
    """``recorded`` (read back from a table JSON, whose keys :func:`json_text` sorted) with its mappings'
    keys in ``fresh``'s order (the registry's: e.g. a table's ``scores`` columns), keys only it has last."""
    if isinstance(recorded, dict) and isinstance(fresh, dict):
        keys = [k for k in fresh if k in recorded] + [k for k in recorded if k not in fresh]
        return {k: in_order_of(recorded[k], fresh.get(k)) for k in keys}
    if isinstance(recorded, list) and isinstance(fresh, list) and len(recorded) == len(fresh):
        return [in_order_of(r, f) for r, f in zip(recorded, fresh, strict=True)]
    return recorded


@dataclass(frozen=True)
class TableWrite:
    """What :func:`update_table` did: the table's JSON path and the files it (re)wrote (none: unchanged)."""

    path: Path
    written: tuple[Path, ...]

    @property
    def changed(self) -> bool:
        return bool(self.written)


def update_table(name: str, scale: str, results: str | Path | None = None) -> TableWrite:
    """Assemble ``name`` and write ``results/<scale>/tables/<name>.{json,csv,md}`` atomically, each only
    where its content changes. An assembly equal to the JSON on disk but for :data:`VOLATILE_PROVENANCE`
    keeps that JSON (and its record of when and where it was assembled), and the CSV and Markdown are
    rendered from it: re-assembling unchanged runs rewrites nothing (a clean checkout stays clean)."""
    table = assemble_table(name, scale, results)
    out = tables_dir(results_root(results), scale)
    paths = {ext: child_path(out, name, f".{ext}", what="table") for ext in ("json", "csv", "md")}
    try:
        recorded = read_json(paths["json"], "table JSON") if paths["json"].is_file() else None
    except InputError:  # unreadable: replaced
        recorded = None
    if isinstance(recorded, dict) and table_content(recorded) == table_content(table):
        # the recorded JSON, rendered in the assembly's column order (a JSON round trip sorts the keys)
        table = in_order_of(recorded, table)
    texts = {"json": json_text(table), "csv": to_csv(table), "md": to_markdown(table)}
    written = []
    for ext, path in paths.items():
        try:
            same = path.read_text(encoding="utf-8") == texts[ext]
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            write_text_atomic(path, texts[ext])
            written.append(path)
    return TableWrite(paths["json"], tuple(written))


def write_table(name: str, scale: str, results: str | Path | None = None) -> Path:
    """Assemble and write ``results/<scale>/tables/<name>.{json,csv,md}`` (each only where its content
    changes, :func:`update_table`); returns the JSON path."""
    return update_table(name, scale, results).path
