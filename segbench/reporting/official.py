"""The ISBI 2012 organisers' scores of a table's runs (``isbi_official.json``, written by ``segbench isbi
record-scores``) beside the same runs' held-out numbers, for the table page. Nothing here is computed:
the official numbers are the challenge server's, the held-out ones the run's ``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbench.formatting import FRACTION
from segbench.io import read_json
from segbench.isbi_submission import OFFICIAL_METRICS, read_official
from segbench.paths import record_run_dir


def official_rows(run_ids: list[str], results: Path, scale: str) -> list[dict[str, Any]]:
    """One row per run with recorded organisers' scores: each metric as ``official`` (test set) and
    ``held_out`` (our held-out training slices, where the metric is one the evaluation computes)."""
    rows = []
    for rid in sorted(run_ids):
        run_dir = record_run_dir(results, scale, rid)
        official = read_official(run_dir)
        if official is None:
            continue
        metrics_file = run_dir / "metrics.json"
        isbi = (
            read_json(metrics_file, "run metrics").get("metrics", {}).get("isbi", {})
            if metrics_file.is_file()
            else {}
        )
        rows.append(
            {
                "run_id": rid,
                "cells": [
                    {
                        "metric": name,
                        "official": FRACTION.value(official["metrics"].get(name)),
                        # the scores from the evaluation's isbi.thinned (runs evaluated before: none)
                        "held_out": FRACTION.value(isbi.get(name, (isbi.get("thinned") or {}).get(name))),
                    }
                    for name in OFFICIAL_METRICS
                ],
                "date": official.get("date"),
                "source": official.get("source"),
                "submission": (official.get("submission_sha256") or "")[:16],
            }
        )
    return rows
