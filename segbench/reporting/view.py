"""Turn a table JSON (segbench.tables.assemble_table) into the plain view model the templates render.

Cell colours depend on the scale. At the paper scale, tolerance bands colour each reproduced cell by how
far it lies from the paper's value, the sign respected (a value better than the paper's, e.g. a lower
error, is never red); the bands are those of the metrics' kind (:mod:`segbench.formatting`):

* Mask R-CNN (COCO AP, percentage points): within 1 AP -> ``good`` (green),
  within 3 AP -> ``near`` (amber), else ``far`` (red);
* U-Net (error rates and IoU, fractions): within 10 % relative -> ``good``, within 25 % -> ``near``,
  else ``far``.

Cells without a reproduced value or without a paper value are ``none`` (uncoloured), and a cell whose
delta lies within twice its seed spread is never red (its distance to the paper is within noise). Where
the paper's absolute values are not expected (synthetic data, tiny models: the smoke and mini scales;
:func:`scale_is_absolute`) cells stay uncoloured: the claims carry the colour, by their verdict
(:mod:`segbench.claims`): reproduced green, inconclusive amber, contradicted red, untested or not
measured grey.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from segbench.claims import TEST_RULE, Claim, Verdict, count_verdicts, verdict_of
from segbench.formatting import (
    SCORES_LEGEND,
    VERDICT_LEGEND,
    MetricKind,
    count_text,
    interval_text,
    metric_kind,
    p_text,
    scores_missing_text,
    spread_text,
    table_kind,
)
from segbench.paths import record_run_dir
from segbench.paths import tables_dir as scale_tables_dir
from segbench.reporting.scale_text import sample_words
from segbench.status import table_state
from segbench.tables.compute_curve import curve_sentences

RUN_FILES = ("config.json", "train_log.jsonl", "metrics.json")


VERDICT_BANDS = {
    Verdict.REPRODUCED: "good",
    Verdict.INCONCLUSIVE: "near",
    Verdict.CONTRADICTED: "far",
    Verdict.UNTESTED: "none",
    Verdict.NOT_MEASURED: "none",
}
UNCOLOURED_LEGEND = (
    "cells are not coloured at this scale (the paper's absolute values are not expected); the claims "
    "below are coloured by their verdict"
)


def scale_is_absolute(scale: str) -> bool:
    """Whether the paper's absolute values are a target at this scale (:func:`segbench.registry.absolute_values`)."""
    from segbench.registry import absolute_values

    return absolute_values(scale)


def url_between(target: Path, page_dir: Path) -> str:
    """A relative, URL-quoted link from a page in ``page_dir`` to ``target``."""
    rel = os.path.relpath(target, page_dir)
    return quote(Path(rel).as_posix())


def cell_view(value: dict[str, Any], band: str, kind: MetricKind, reference_only: bool) -> dict[str, Any]:
    per_seed = [v for v in value.get("per_seed", []) if v is not None]
    return {
        "reproduced": None if reference_only else kind.mean_std(value),
        "n": value.get("n", 0),
        "paper": kind.paper(value.get("paper")),
        "delta": kind.value(value.get("delta"), signed=True),
        "band": "none" if reference_only else band,
        "seeds": ", ".join(kind.value(v) for v in per_seed),
        # cross-validation: the errors of all folds' held-out slices counted together (aggregate.pooled_value)
        "pooled": None if reference_only or value.get("pooled") is None else kind.value(value["pooled"]),
    }


def score_view(value: dict[str, Any], key: str) -> dict[str, Any]:
    """A score's cell (registry ``scores:``): mean ± std, n, the per-fold values and the pooled score;
    never coloured (no paper value, never claimed)."""
    kind = metric_kind(key)
    per_seed = [v for v in value.get("per_seed", []) if v is not None]
    return {
        "reproduced": kind.mean_std(value),  # the missing marker without a value
        "n": value.get("n", 0),
        "seeds": ", ".join(kind.value(v) for v in per_seed),
        "pooled": None if value.get("pooled") is None else kind.value(value["pooled"]),
    }


def direction_view(
    direction: dict[str, Any], labels: dict[str, str], kind: MetricKind, lower: bool
) -> dict[str, Any]:
    """A claim record (:mod:`segbench.claims`) as the page shows it: the claim in words with the rows'
    labels, the gap with its interval, the paper's gap, the test, p (raw and Holm), verdict and caveats."""
    verdict = verdict_of(direction)
    better = labels.get(direction.get("better", ""), direction.get("better", ""))
    worse = labels.get(direction.get("worse", ""), direction.get("worse", ""))
    try:
        claim_text = Claim.from_registry(direction, lower_is_better=lower).statement(better, worse)
    except ValueError:  # a table assembled before the claims engine: its own wording
        claim_text = direction.get("claim", "")
    test = direction.get("test") or "–"
    if direction.get("n"):
        test += f", n {direction['n']}"
    return {
        "source": direction.get("source", "paper"),
        "claim": direction.get("claim", ""),
        "claim_text": claim_text,
        "better": better,
        "worse": worse,
        "metric": direction.get("metric", ""),
        "gap": kind.value(direction.get("gap"), signed=True),
        "interval": interval_text(direction, kind),
        "spread": spread_text(direction, kind),
        "gap_per_seed": ", ".join(kind.value(v, signed=True) for v in direction.get("gap_per_seed") or []),
        "paper_gap": kind.value(direction.get("paper_gap"), signed=True),
        "test": test,
        "p": p_text(direction),
        "verdict": verdict.words,
        "verdict_key": verdict.value,
        "reason": direction.get("verdict_reason", ""),
        "band": VERDICT_BANDS[verdict],
        "caveats": list(direction.get("caveats") or []),
    }


def run_views(table: dict[str, Any], results: Path, page_dir: Path) -> list[dict[str, Any]]:
    """One entry per run instance (``<run>-seed<k>``) with its provenance and links to its files."""
    out = []
    for rid, info in sorted(table.get("runs", {}).items()):
        run_dir = record_run_dir(results, table["scale"], rid)
        links = [
            {
                "name": name,
                "href": url_between(run_dir / name, page_dir),
                "exists": (run_dir / name).is_file(),
            }
            for name in RUN_FILES
        ]
        out.append(
            {
                "run_id": rid,
                "links": links,
                **{
                    k: info.get(k)
                    for k in ("config_hash", "git_commit", "device", "train_wall_time_s", "eval_wall_time_s")
                },
            }
        )
    return out


def config_diff_view(table: dict[str, Any], results: Path, width: int = 60) -> dict[str, Any]:
    """The config keys that differ between the table's runs, from their recorded ``config.json``
    (:mod:`segbench.configdiff`): ``{"runs": [run, ...], "rows": [{"key", "values": [text, ...]}]}``;
    values longer than ``width`` characters are cut (the full value in ``"full"``)."""
    from segbench.configdiff import config_diff, format_value, table_run_configs

    configs = table_run_configs(table, results)
    rows = []
    for entry in config_diff(configs) if len(configs) > 1 else []:
        full = [format_value(entry["values"][run]) for run in configs]
        rows.append(
            {
                "key": entry["key"],
                "values": [v if len(v) <= width else v[: width - 1] + "…" for v in full],
                "full": full,
            }
        )
    return {"runs": list(configs), "rows": rows}


def table_view(table: dict[str, Any], results: Path, page_dir: Path) -> dict[str, Any]:
    """Everything a table page shows, already formatted."""
    kind = table_kind(table)
    tol = kind.tolerance
    absolute = scale_is_absolute(table["scale"])
    lower = bool(table.get("lower_is_better", False))

    def band(row: dict[str, Any], col: str) -> str:
        if not absolute:
            return "none"
        value = row["values"][col]
        noise = 2 * (value.get("std") or 0.0)
        return tol.classify(value.get("delta"), value.get("paper"), lower_is_better=lower, noise=noise)

    labels = {row["id"]: row["label"] for row in table["rows"]}
    scores: dict[str, str] = table.get("scores") or {}  # tables assembled before: none
    rows = [
        {
            "id": row["id"],
            "label": row["label"],
            "runs": row.get("runs", []),
            "reference_only": row.get("reference_only", False),
            "cells": [
                cell_view(row["values"][col], band(row, col), kind, row.get("reference_only", False))
                for col in table["columns"]
            ],
            "scores": [score_view(row.get("scores", {}).get(name, {}), key) for name, key in scores.items()],
            "converged": row.get("converged", {}).get("text"),
        }
        for row in table["rows"]
    ]
    directions = [direction_view(d, labels, kind, lower) for d in table.get("directions", [])]
    records = table.get("directions", [])
    counts = {
        source: count_verdicts([d for d in records if d.get("source", "paper") == source])
        for source in ("paper", "ours")
    }
    bands = [c["band"] for r in rows for c in r["cells"] if c["band"] != "none"]
    tables_dir = scale_tables_dir(results, table["scale"])
    return {
        "name": table["table"],
        "title": table["title"],
        "paper": table["paper"],
        "citation": table["citation"],
        "scale": table["scale"],
        "scale_description": table.get("scale_description", ""),
        "absolute": absolute,
        "split": table.get("split"),
        "evaluated_on": table.get("evaluated_on"),
        "note": table.get("note"),
        # folds at a cross-validation scale (seed k = fold k), seeds elsewhere
        "samples": sample_words(table.get("cross_validation_folds")),
        "folds": table.get("cross_validation_folds"),
        "pooled": any(c["pooled"] is not None for r in rows for c in r["cells"]),
        "columns": table["columns"],
        "metrics": table.get("metrics", {}),
        "lower_is_better": table.get("lower_is_better", False),
        "scores": [{"name": name, "key": key} for name, key in scores.items()],
        "scores_legend": SCORES_LEGEND if scores else None,
        "scores_missing": scores_missing_text(table["scores_missing"])
        if scores and table.get("scores_missing")
        else None,
        "tolerance": (tol.describe() + "; within twice the seed spread of the paper's value: green")
        if absolute
        else UNCOLOURED_LEGEND,
        "verdict_legend": VERDICT_LEGEND,
        "rows": rows,
        "converged": any(r["converged"] is not None for r in rows),  # tables assembled before: no column
        "convergence_rule": table.get("convergence_rule"),
        "compute_curve": curve_sentences(table["compute_curve"], kind.value)
        if table.get("compute_curve")
        else [],
        "compute_curve_rows": ", ".join((table.get("compute_curve") or {}).get("rows", [])),
        "directions": directions,
        "paper_directions": [d for d in directions if d["source"] == "paper"],
        "our_directions": [d for d in directions if d["source"] == "ours"],
        "claim_counts": counts,
        "paper_count_text": count_text(counts["paper"]),
        "our_count_text": count_text(counts["ours"]),
        "test_rule": TEST_RULE if records else None,
        "band_counts": {b: bands.count(b) for b in ("good", "near", "far")},
        "freshness": table_state(table["table"], table["scale"], results),
        "runs": run_views(table, results, page_dir),
        "config_diff": config_diff_view(table, results),
        "provenance": table.get("provenance", {}),
        "sources": [
            {
                "name": f"{table['table']}.{ext}",
                "href": url_between(tables_dir / f"{table['table']}.{ext}", page_dir),
            }
            for ext in ("json", "csv", "md")
        ],
    }
