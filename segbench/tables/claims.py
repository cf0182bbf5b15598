"""A table's claims: each direction the registry states, tested and judged by :mod:`segbench.claims`.

The claims of one table are one Holm family; each record carries its source (the paper's claim, or one
against a segbench baseline), the paper's own gap and the caveats computed from the two sides' run
records (:mod:`segbench.tables.caveats`).
"""

from __future__ import annotations

from typing import Any

from segbench.claims import Claim, judge_all, std_floor, weigh
from segbench.registry import load_registry
from segbench.tables.aggregate import CONVERGED_COLUMN
from segbench.tables.caveats import convergence_caveat, origin_caveats, protocol_caveat, row_run

BASELINE_MARK = "(segbench baseline)"


def is_segbench_baseline(row: dict[str, Any]) -> bool:
    """A row the paper does not have: labelled a segbench baseline, or measured with no paper value at all."""
    values = row["values"].values()
    return BASELINE_MARK in row["label"] or (
        not row["reference_only"] and all(v["paper"] is None for v in values)
    )


def table_claims(
    table: dict[str, Any],
    rows: list[dict[str, Any]],
    records: dict[str, list[dict[str, Any]]],
    configs: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each registered claim of the table tested by :mod:`segbench.claims` (Holm-adjusted within the
    table), with its source (the paper's claim, or one against a segbench baseline), the paper's gap and
    the caveats computed from the two sides' run records (:mod:`segbench.tables.caveats`)."""
    definitions = load_registry()["runs"]
    by_id = {row["id"]: row for row in rows}
    spec_rows = {row["id"]: row for row in table["rows"]}
    lower = bool(table.get("lower_is_better"))
    claims, evidence, extras = [], [], []
    for d in table.get("directions", []):
        claim = Claim.from_registry(d, lower_is_better=lower)
        b_row, w_row = by_id[claim.better], by_id[claim.worse]
        a, b = b_row["values"][claim.metric], w_row["values"][claim.metric]
        floor = std_floor(
            table["metrics"][claim.metric], [m for m in (a["mean"], b["mean"]) if m is not None]
        )
        evidence.append(weigh(claim, a.get("per_seed") or [], b.get("per_seed") or [], floor=floor))
        # the registry may say whose claim it is; otherwise a segbench baseline row makes it ours
        ours = is_segbench_baseline(b_row) or is_segbench_baseline(w_row)
        paper_gap = (
            claim.sign * (a["paper"] - b["paper"])
            if a["paper"] is not None and b["paper"] is not None
            else None
        )
        runs = [
            r
            for r in (
                row_run(spec_rows[claim.better], claim.metric),
                row_run(spec_rows[claim.worse], claim.metric),
            )
            if r
        ]
        caveats = []
        if len(runs) == 2 and a["mean"] is not None and b["mean"] is not None:
            caveats = [
                protocol_caveat(runs[0], runs[1], configs, definitions),
                convergence_caveat(runs, {r: rows_convergence(rows, r) for r in runs}),
                *origin_caveats(runs, records),
            ]
        claims.append(claim)
        extras.append(
            {
                "better": claim.better,
                "worse": claim.worse,
                "metric": claim.metric,
                "claim": claim.statement(symbols=True),
                "source": d.get("source") or ("ours" if ours else "paper"),
                "paper_gap": paper_gap,
                "caveats": [c for c in caveats if c],
            }
        )
    return [{**extra, **judged} for extra, judged in zip(extras, judge_all(evidence), strict=True)]


def rows_convergence(rows: list[dict[str, Any]], run: str) -> list[dict[str, Any]]:
    """The per-seed convergence records of ``run`` from the rows' ``converged`` cells."""
    prefix = f"{run}-seed"
    return [
        s
        for row in rows
        for s in row.get(CONVERGED_COLUMN, {}).get("per_seed", [])
        if str(s.get("run_id", "")).startswith(prefix) and s["run_id"][len(prefix) :].isdigit()
    ]
