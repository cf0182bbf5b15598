"""A table's files besides its JSON: Markdown (what a person reads) and CSV (one line per cell).

Numbers and claim wording come from :mod:`segbench.formatting`, as on the HTML pages.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from segbench.claims import TEST_RULE, count_verdicts, verdict_of
from segbench.formatting import (
    MARKDOWN_MISSING,
    SCORES_LEGEND,
    count_text,
    evidence_text,
    metric_kind,
    scores_missing_text,
    table_kind,
)
from segbench.tables.aggregate import CONVERGED_COLUMN
from segbench.tables.compute_curve import curve_sentences
from segbench.trainlog import CONVERGENCE_RULE


def to_markdown(table: dict[str, Any]) -> str:
    """The table as Markdown: cells ``mean ± std (seeds) / paper / delta``, the claims with their evidence,
    the convergence rule and provenance."""
    kind = table_kind(table)
    lines = [
        f"# {table['table']}: {table['title']}",
        "",
        f"Scale: **{table['scale']}** ({table['scale_description']})  ",
        f"Paper: {table['citation']}  ",
        f"Paper split: {table['split']}"
        + (f"; reproduced on: {table['evaluated_on']}" if table["evaluated_on"] else ""),
        *(["", f"Note: {table['note']}"] if table.get("note") else []),
        "",
        "Cells: reproduced mean ± std over seeds (number of seeds) / paper / delta."
        if not table.get("cross_validation_folds")
        else f"Cells: reproduced mean ± std over the {table['cross_validation_folds']} folds (number of folds; "
        "seed k = fold k)"
        + (
            "; pooled = the errors of all held-out slices together"
            if any(v.get("pooled") is not None for row in table["rows"] for v in row["values"].values())
            else ""
        )
        + " / paper / delta (of the mean).",
        "",
    ]
    converged = any(CONVERGED_COLUMN in row for row in table["rows"])  # tables assembled before: none
    scores = table.get("scores") or {}  # reported beside the columns, higher is better, never claimed
    extra = [f"{name} ↑" for name in scores] + ([CONVERGED_COLUMN] if converged else [])
    lines.append("| row | " + " | ".join([*table["columns"], *extra]) + " |")
    lines.append("|---|" + "---|" * (len(table["columns"]) + len(extra)))
    dash = MARKDOWN_MISSING
    for row in table["rows"]:
        cells = []
        for col in table["columns"]:
            v = row["values"][col]
            if row["reference_only"]:
                cells.append(f"(paper {kind.paper(v['paper'], missing=dash)})")
                continue
            pooled = f"; pooled {kind.value(v['pooled'])}" if v.get("pooled") is not None else ""
            cells.append(
                f"{kind.reproduced(v, missing=dash)}{pooled} / {kind.paper(v['paper'], missing=dash)} / "
                f"{kind.value(v['delta'], signed=True, missing=dash)}"
            )
        for name, key in scores.items():
            cells.append(score_text(row.get("scores", {}).get(name, {}), key))
        if converged:
            cells.append(row.get(CONVERGED_COLUMN, {}).get("text", dash))
        label = row["label"] + (" *(reference)*" if row["reference_only"] else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if scores:
        pooled = "; pooled" if table.get("cross_validation_folds") else ""
        lines += ["", f"↑ {SCORES_LEGEND}; cells: mean ± std (n){pooled}."]
        if table.get("scores_missing"):
            lines += ["", scores_missing_text(table["scores_missing"], missing=dash) + "."]
    for source, heading in (("paper", "The paper's claims"), ("ours", "Against our baselines")):
        group = [dirn for dirn in table["directions"] if dirn.get("source", "paper") == source]
        if not group:
            continue
        lines += ["", f"{heading}:", ""]
        for dirn in group:
            paper = (
                ""
                if dirn.get("paper_gap") is None
                else f"; paper's gap {kind.value(dirn['paper_gap'], signed=True)}"
            )
            caveats = "".join(f" ⚠ {c}." for c in dirn.get("caveats", []))
            lines.append(
                f"- {dirn['claim']}: **{verdict_of(dirn).words}** ({dirn.get('verdict_reason', '')}); "
                f"{evidence_text(dirn, kind)}{paper}.{caveats}"
            )
    if converged:
        lines += [
            "",
            f"Converged: {table.get('convergence_rule', CONVERGENCE_RULE)}; "
            "yes / no / k of m run instances, with the mean relative change.",
        ]
    if table.get("compute_curve"):
        lines += [
            "",
            "Error against compute (a power law fitted to the pooled errors; segbench.tables.compute_curve):",
            "",
        ]
        lines += [f"- {sentence}" for sentence in curve_sentences(table["compute_curve"], kind.value)]
    if table["directions"]:
        lines += ["", f"Claims: {count_text(count_verdicts(table['directions']))}. Test: {TEST_RULE}."]
    prov = table["provenance"]
    unit = "folds" if table.get("cross_validation_folds") else "seeds"
    lines += [
        "",
        f"Provenance: {runs_trained_text(table)}; assembled at commit `{prov.get('git_commit')}`, device "
        f"{prov.get('device')}, {unit} {prov.get('seeds')}, compute {prov.get('wall_time_s')} s (train + "
        f"eval, summed over runs), torch {(prov.get('package_versions') or {}).get('torch')}, "
        f"created {prov.get('created_utc')}.",
        "",
    ]
    return "\n".join(lines)


def score_text(cell: dict[str, Any], key: str) -> str:
    """A score's Markdown cell: ``mean ± std (n); pooled p``, or ``-`` without a value."""
    kind = metric_kind(key)
    if cell.get("mean") is None:
        return MARKDOWN_MISSING
    pooled = f"; pooled {kind.value(cell['pooled'])}" if cell.get("pooled") is not None else ""
    return kind.reproduced(cell) + pooled


def short_commit(commit: str) -> str:
    """``c2293d89c8dd...+dirty`` -> ``c2293d8+dirty``."""
    sha, plus, rest = str(commit).partition("+")
    return sha[:7] + plus + rest


def runs_trained_text(table: dict[str, Any]) -> str:
    """Where the table's runs were trained, in words: their distinct commits and machines (each run's
    ``trained_at``, else its metrics.json provenance), e.g. ``runs trained at commit `c2293d8` on cpu
    (x86_64, 1 threads), host vm``; ``runs: none`` for a reference-only table."""
    runs = list((table.get("runs") or {}).values())
    if not runs:
        return "runs: none (reference-only table)"
    where = [run.get("trained_at") or run for run in runs]
    commits = list(dict.fromkeys(short_commit(w["git_commit"]) for w in where if w.get("git_commit")))
    machines = list(
        dict.fromkeys(", host ".join(str(x) for x in (w.get("device"), w.get("host")) if x) for w in where)
    )
    machines = [m for m in machines if m]
    text = "runs trained at " + (
        f"commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in commits)}"
        if commits
        else "an unrecorded commit"
    )
    return text + (f" on {'; '.join(machines)}" if machines else "")


def to_csv(table: dict[str, Any]) -> str:
    """One line per row and column: mean, std, n, the per-seed values, paper, delta, pooled, converged; then
    one per row and score (``scores:``, no paper value or delta)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "table",
            "scale",
            "row",
            "label",
            "reference_only",
            "column",
            "mean",
            "std",
            "n",
            "per_seed",
            "paper",
            "delta",
            "pooled",
            CONVERGED_COLUMN,
        ]
    )
    for row in table["rows"]:
        values = [(col, row["values"][col]) for col in table["columns"]]
        for col, v in [*values, *row.get("scores", {}).items()]:  # a score: no paper value, no delta
            writer.writerow(
                [
                    table["table"],
                    table["scale"],
                    row["id"],
                    row["label"],
                    row["reference_only"],
                    col,
                    v["mean"],
                    v["std"],
                    v["n"],
                    " ".join(map(str, v["per_seed"])),
                    v.get("paper"),
                    v.get("delta"),
                    v.get("pooled"),
                    row.get(CONVERGED_COLUMN, {}).get("text"),
                ]
            )
    return buf.getvalue()
