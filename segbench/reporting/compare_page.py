"""Comparison pages: ``reports/<scale>/compare/<table>--<method>.html`` from the records ``segbench compare``
writes (``results/<scale>/compare/<table>--<method>.json``, :mod:`segbench.compare`).

A page shows the method beside every baseline row (mean ± std per column, the per-seed values and their
dots on one axis per column), the comparisons as the claims engine judged them (:mod:`segbench.claims`:
gap, interval, spread, test, p raw and Holm, verdict coloured as the tables' claims), and the training
loss of the method's runs beside their baselines' from ``train_log.jsonl``. It reads files only: nothing
is trained or evaluated here. The index and the compared table's page link to it (:func:`comparison_link`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbench.claims import Verdict
from segbench.errors import InputError
from segbench.formatting import (
    COMPARISON_WORDS,
    MetricKind,
    evidence_text,
    interval_text,
    p_text,
    spread_text,
    table_kind,
    value_range,
)
from segbench.io import read_json, sha256_file
from segbench.names import check_name
from segbench.paths import child_path, record_run_dir
from segbench.reporting.dots import DOT, METHOD_DOT, Axis, curves_svg, dots_svg, finite
from segbench.reporting.scale_text import sample_words
from segbench.reporting.view import RUN_FILES, VERDICT_BANDS, url_between
from segbench.reporting.zoo import loss_points, read_json_or_none, read_log

COMPARE_DIR = "compare"
REQUIRED_KEYS = ("rows", "comparisons", "method", "columns", "scale")
#: the comparison words of segbench.compare, for records that carry no ``claim_verdict``
#: a comparison's words back to the claims engine's verdict (and the word of records from before it)
WORD_VERDICTS = {word: Verdict(value) for value, word in COMPARISON_WORDS.items()} | {
    "no significant difference": Verdict.INCONCLUSIVE
}
VERDICT_ORDER = tuple(WORD_VERDICTS)


def load_comparisons(scale: str, results: Path) -> list[dict[str, Any]]:
    """Every ``results/<scale>/compare/*.json``, each with ``name`` (its file stem, the page's name)."""
    folder = results / scale / COMPARE_DIR
    out = []
    for path in sorted(folder.glob("*.json")):
        record = read_json(path, "comparison JSON")
        missing = [k for k in REQUIRED_KEYS if not isinstance(record, dict) or k not in record]
        if missing:
            raise InputError(
                f"{path}: not a comparison record (no {', '.join(missing)}); rewrite it with segbench compare"
            )
        check_comparison_names(record, path)
        out.append({**record, "name": path.stem})
    return out


def check_comparison_names(record: dict[str, Any], path: Path) -> None:
    """Every name of a comparison record that becomes a path or a link (its file name, compared table,
    scale, method, runs, rows' runs and seeds) must pass its rule (:mod:`segbench.names`)."""
    check_name(path.stem, "comparison", what="comparison file name", source=path)
    check_name(record["scale"], what="scale", source=path)
    if "compared_table" in record:
        check_name(record["compared_table"], what="compared_table", source=path)
    method = record["method"]
    if not isinstance(method, dict):
        raise InputError(f"{path}: 'method' is not an object; rewrite it with segbench compare")
    if "name" in method:
        check_name(method["name"], "method", what="method name", source=path)
    for rid in record.get("runs") or {}:
        check_name(rid, "run_id", what="run", source=path)
    for row in record["rows"]:
        for run in (row.get("runs") or []) if isinstance(row, dict) else []:
            check_name(run, "run", what="row run", source=path)
    for seed in record.get("seeds") or []:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(
                f"{path}: seed {seed!r} is not a non-negative integer; rewrite it with segbench compare"
            )


def page_path(page_dir: Path, name: str) -> Path:
    return child_path(page_dir / COMPARE_DIR, name, ".html", what="comparison")


def verdict_of_comparison(c: dict[str, Any]) -> Verdict:
    """The claims-engine verdict of a comparison (``claim_verdict``; older records: from its words)."""
    try:
        return Verdict(c.get("claim_verdict"))
    except ValueError:
        return WORD_VERDICTS.get(str(c.get("verdict")), Verdict.NOT_MEASURED)


def counts_text(comparisons: list[dict[str, Any]]) -> str:
    """``1 better, 2 worse, 6 inconclusive of 9 comparisons``."""
    words = [str(c.get("verdict")) for c in comparisons]
    order = [w for w in VERDICT_ORDER if w in words] + sorted(set(words) - set(VERDICT_ORDER))
    parts = ", ".join(f"{words.count(w)} {w}" for w in order)
    return (
        f"{parts} of {len(words)} comparison{'s' if len(words) != 1 else ''}" if words else "no comparisons"
    )


def method_text(record: dict[str, Any]) -> str:
    method = record["method"]
    return f"{method.get('name', '?')} ({method.get('kind', '?')})"


def comparison_link(record: dict[str, Any], page_dir: Path, from_dir: Path) -> dict[str, Any]:
    """What the index and a table page list about one comparison, linked from a page in ``from_dir``."""
    return {
        "name": record["name"],
        "href": url_between(page_path(page_dir, record["name"]), from_dir),
        "method": method_text(record),
        "spec": record["method"].get("spec", ""),
        "table": record.get("compared_table", record["name"].split("--", 1)[0]),
        "base_row": record.get("base_row", ""),
        "seeds": len(record.get("seeds") or []),
        "counts": counts_text(record["comparisons"]),
    }


def direction_sentences(record: dict[str, Any]) -> list[str]:
    """Which way is better, per metric, and what the sign of a gap means."""
    lower = bool(record.get("lower_is_better"))
    way = "lower" if lower else "higher"
    metrics = record.get("metrics") or {}
    return [
        f"{col}{f' ({metrics[col]})' if col in metrics else ''}: {way} is better; a gap > 0 means the "
        f"method's {col} is {way} than the baseline's"
        for col in record["columns"]
    ]


def run_ids(record: dict[str, Any]) -> list[str]:
    """The run instances behind the record: its ``runs`` keys, else every row's runs x seeds."""
    if record.get("runs"):
        return sorted(record["runs"])
    seeds = record.get("seeds") or []
    return sorted({f"{run}-seed{s}" for row in record["rows"] for run in row.get("runs", []) for s in seeds})


def run_freshness(entry: dict[str, Any], metrics: Path) -> str:
    """``current``, ``absent`` or ``changed since`` (the metrics file no longer has the sha256 recorded)."""
    if not metrics.is_file():
        return "absent"
    recorded = entry.get("metrics_sha256")
    if recorded and sha256_file(metrics) != recorded:
        return "changed since"
    return "current" if recorded else "not recorded"


def runs_view(record: dict[str, Any], results: Path, page_dir: Path) -> list[dict[str, Any]]:
    recorded = record.get("runs") or {}
    row_of = {run: row for row in record["rows"] for run in row.get("runs", [])}
    out = []
    for rid in run_ids(record):
        folder = record_run_dir(results, record["scale"], rid)
        entry = recorded.get(rid) or {}
        metrics = read_json_or_none(folder / "metrics.json") or {}
        run = rid.rsplit("-seed", 1)[0]
        row = row_of.get(run, {})
        out.append(
            {
                "run_id": rid,
                "row": row.get("label", ""),
                "method": bool(row.get("method")),
                "config_hash": entry.get("config_hash") or metrics.get("config_hash"),
                "freshness": run_freshness(entry, folder / "metrics.json") if entry else None,
                "links": [
                    {
                        "name": name,
                        "href": url_between(folder / name, page_dir),
                        "exists": (folder / name).is_file(),
                    }
                    for name in RUN_FILES
                ],
            }
        )
    return out


def losses(results: Path, scale: str, rid: str) -> list[tuple[float, float]]:
    """The logged training loss of one run instance (empty without a ``train_log.jsonl``)."""
    return loss_points(read_log(record_run_dir(results, scale, rid) / "train_log.jsonl"))


def loss_range(points: list[tuple[float, float]]) -> str | None:
    return value_range(points[0][1], points[-1][1]) if points else None


def curves_view(record: dict[str, Any], results: Path) -> list[dict[str, Any]]:
    """Per seed and method run: the method run's loss over its baseline run's, on one pair of axes
    (``<run>+<name>`` and ``<run>``); empty when none of them has a ``train_log.jsonl``."""
    method_runs = [run for row in record["rows"] if row.get("method") for run in row.get("runs", [])]
    pairs = []
    for seed in record.get("seeds") or []:
        for run in method_runs:
            method_id, base_id = f"{run}-seed{seed}", f"{run.split('+', 1)[0]}-seed{seed}"
            method, base = (
                losses(results, record["scale"], method_id),
                losses(results, record["scale"], base_id),
            )
            title = (
                f"training loss: {method_id} (orange, {loss_range(method) or 'no log'}) over "
                f"{base_id} (blue, {loss_range(base) or 'no log'})"
            )
            pairs.append(
                {
                    "seed": seed,
                    "method": {"run_id": method_id, "range": loss_range(method)},
                    "baseline": {"run_id": base_id, "range": loss_range(base)},
                    "svg": curves_svg([(base, DOT), (method, METHOD_DOT)], title),
                }
            )
    return pairs if any(p["svg"] for p in pairs) else []


def rows_view(record: dict[str, Any], kind: MetricKind, samples: dict[str, str]) -> list[dict[str, Any]]:
    axes = {
        col: Axis.spanning(
            [v for row in record["rows"] for v in row["values"].get(col, {}).get("per_seed", [])]
        )
        for col in record["columns"]
    }
    rows = []
    for row in record["rows"]:
        cells = []
        for col in record["columns"]:
            value = row["values"].get(col)
            if value is None:
                cells.append(None)
                continue
            per_seed = value.get("per_seed") or []
            text = kind.mean_std(value)
            seeds = ", ".join(kind.value(v if finite([v]) else None) for v in per_seed)
            cells.append(
                {
                    "text": text,
                    "n": value.get("n", len(finite(per_seed))),
                    "seeds": seeds,
                    "dots": dots_svg(
                        per_seed,
                        axes[col],
                        f"{row['label']}, {col} per {samples['one']}: {seeds}",
                        method=bool(row.get("method")),
                    ),
                }
            )
        rows.append(
            {
                "id": row["id"],
                "label": row["label"],
                "runs": row.get("runs", []),
                "method": bool(row.get("method")),
                "cells": cells,
            }
        )
    return rows


def comparisons_view(record: dict[str, Any], kind: MetricKind) -> list[dict[str, Any]]:
    def points(c: dict[str, Any]) -> list[float | None]:
        iv = c.get("interval") or {}
        return [*(c.get("gap_per_seed") or []), iv.get("low"), iv.get("high"), 0.0]

    axes = {
        col: Axis.spanning(
            [v for c in record["comparisons"] if c.get("metric") == col for v in points(c)], allow_log=False
        )
        for col in record["columns"]
    }
    out = []
    for c in record["comparisons"]:
        verdict = verdict_of_comparison(c)
        gaps = c.get("gap_per_seed") or []
        gap_text = ", ".join(kind.value(v, signed=True) for v in finite(gaps))
        iv = c.get("interval")
        out.append(
            {
                "baseline": c.get("baseline_label", c.get("baseline", "")),
                "metric": c.get("metric", ""),
                "gap": kind.value(c.get("gap"), signed=True),
                "gap_per_seed": gap_text,
                "interval": interval_text(c, kind),
                "spread": spread_text(c, kind),
                "test": ", ".join(str(x) for x in (c.get("test"), f"n {c.get('n') or 0}") if x),
                "p": p_text(c),
                "evidence": evidence_text(c, kind),
                "verdict": str(c.get("verdict", verdict.words)),
                "verdict_key": verdict.value,
                "band": VERDICT_BANDS[verdict],
                "reason": c.get("verdict_reason", ""),
                "dots": dots_svg(
                    gaps,
                    axes.get(c.get("metric")),
                    f"{c.get('baseline_label', '')}, {c.get('metric', '')}: gap per seed {gap_text}"
                    + (f", interval {interval_text(c, kind)}" if iv else ""),
                    method=True,
                    interval=(iv["low"], iv["high"]) if iv else None,
                    zero=True,
                ),
            }
        )
    return out


def compare_view(record: dict[str, Any], results: Path, page_dir: Path, tables: set[str]) -> dict[str, Any]:
    """Everything a comparison page shows, already formatted (``page_dir``: the scale's report folder;
    ``tables``: the table pages the report has, to link the compared one)."""
    kind = table_kind(record)
    here = page_dir / COMPARE_DIR
    folds = record.get("cross_validation_folds")
    samples = record.get("sample_words") or sample_words(folds)
    compared = record.get("compared_table", record["name"].split("--", 1)[0])
    runs = runs_view(record, results, here)
    source = results / record["scale"] / COMPARE_DIR / record["name"]
    identity = record["method"].get("identity") or {}
    return {
        "name": record["name"],
        "title": record.get("title", record["name"]),
        "citation": record.get("citation", ""),
        "scale": record["scale"],
        "scale_description": record.get("scale_description", ""),
        "method": record["method"],
        "method_text": method_text(record),
        "identity": {k: v for k, v in identity.items() if k != "source_files" and v is not None},
        "source_files": identity.get("source_files") or [],
        "compared_table": compared,
        "table_href": url_between(page_dir / f"{compared}.html", here) if compared in tables else None,
        "base_row": record.get("base_row", ""),
        "seeds": record.get("seeds") or [],
        "samples": samples,
        "folds": folds,
        "paper_split": record.get("paper_split", record.get("split")),
        "evaluated_on": record.get("evaluated_on"),
        "lower_is_better": bool(record.get("lower_is_better")),
        "columns": record["columns"],
        "metrics": record.get("metrics") or {},
        "rows": rows_view(record, kind, samples),
        "comparisons": comparisons_view(record, kind),
        "counts": counts_text(record["comparisons"]),
        "statistics": record.get("statistics", ""),
        "directions": direction_sentences(record),
        "curves": curves_view(record, results),
        "runs": runs,
        "changed": [r["run_id"] for r in runs if r["freshness"] in ("changed since", "absent")],
        "provenance": record.get("provenance") or {},
        "sources": [
            {"name": f"{record['name']}.{ext}", "href": url_between(source.with_suffix(f".{ext}"), here)}
            for ext in ("json", "csv", "md")
            if source.with_suffix(f".{ext}").is_file()
        ],
    }
