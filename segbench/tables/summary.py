"""A Markdown digest of a scale's assembled tables: one headline value per row and every direction.

What the README's "Reproduced results" section shows, produced from ``results/<scale>/tables/*.json``
(``segbench table --summary``), never typed by hand. The headline column is a table's ``headline`` key
in the registry, else its first column (:func:`segbench.registry.headline_column`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbench.claims import count_verdicts, verdict_of
from segbench.formatting import MARKDOWN_MISSING, count_text, interval_text, p_value, table_kind
from segbench.io import read_json


def _target(table: str, registry: dict[str, Any]) -> str:
    """The Snakemake target that reproduces ``table`` (its group's, e.g. table2 for table2c)."""
    from segbench.registry import artifacts

    groups = [
        name
        for name, members in artifacts(registry).items()
        if table in members and name != table and name != "all"
    ]
    return f"reproduce_{min(groups, key=len) if groups else table}"


def summary_markdown(scale: str, results: Path, tables: list[dict[str, Any]] | None = None) -> str:
    """The two Markdown tables (values, then directions) for every assembled table of ``scale``."""
    from segbench.registry import load_registry, table_names

    registry = load_registry()
    if tables is None:
        paths = [results / scale / "tables" / f"{name}.json" for name in table_names()]
        tables = [read_json(p, "table JSON") for p in paths if p.is_file()]
    lines = ["| table | row | reproduced (mean ± std, seeds) | paper |", "|---|---|---|---|"]
    for t in tables:
        spec = registry["tables"].get(t["table"], {})
        column = spec.get("headline", t["columns"][0])
        kind = table_kind(t)
        link = f"[{t['table']}](results/{scale}/tables/{t['table']}.md)"
        for row in t["rows"]:
            if row.get("reference_only"):
                continue
            cell = row["values"][column]
            paper = kind.paper(cell.get("paper"), missing=MARKDOWN_MISSING)
            reproduced = MARKDOWN_MISSING if cell.get("mean") is None else kind.reproduced(cell)
            lines.append(f"| {link} {column} | {row['label']} | {reproduced} | {paper} |")
    claims = [d for t in tables for d in t.get("directions", [])]
    lines += [
        "",
        f"Claims at {scale}: the paper's {count_text(count_verdicts([d for d in claims if d.get('source', 'paper') == 'paper']))}; "
        f"ours {count_text(count_verdicts([d for d in claims if d.get('source') == 'ours']))} "
        "(tests: `segbench.claims`; each table's page gives the rule).",
        "",
        f"| table | claim | whose | verdict at {scale} | gap [90% interval] | p (Holm) | caveats | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    # the command names the scale unless it is the default one (config/config.yaml's)
    at_scale = "" if scale == registry["default_scale"] else f" --config scale={scale}"
    for t in tables:
        kind = table_kind(t)
        for d in t.get("directions", []):
            gap = kind.value(d.get("gap"), signed=True, missing=MARKDOWN_MISSING)
            if d.get("interval"):
                gap += f" {interval_text(d, kind)}"
            p = MARKDOWN_MISSING if d.get("p_adjusted") is None else p_value(d["p_adjusted"])
            whose = "ours (vs a segbench baseline)" if d.get("source") == "ours" else "the paper's"
            caveats = len(d.get("caveats") or [])
            lines.append(
                f"| {t['table']} | {d['claim']} | {whose} | {verdict_of(d).words} | {gap} | {p} | "
                f"{caveats or '-'} | `snakemake --cores all {_target(t['table'], registry)}{at_scale}` |"
            )
    return "\n".join(lines) + "\n"
