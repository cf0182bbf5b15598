"""A Markdown digest of a scale's assembled tables: one headline value per row and every direction.

What the digest blocks of README.md and docs/results.md show (``segbench table --summary --write``,
:mod:`segbench.tables.digest`), produced from ``results/<scale>/tables/*.json``, never typed by hand. The headline column is a table's ``headline`` key
in the registry, else its first column (:func:`segbench.registry.headline_column`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbench.claims import count_verdicts, verdict_of
from segbench.formatting import MARKDOWN_MISSING, count_text, interval_text, p_value, table_kind
from segbench.io import read_json
from segbench.paths import table_file


def _target(table: str, registry: dict[str, Any]) -> str:
    """The Snakemake target that reproduces ``table`` (its group's, e.g. table2 for table2c)."""
    from segbench.registry import artifacts

    groups = [
        name
        for name, members in artifacts(registry).items()
        if table in members and name != table and name != "all"
    ]
    return f"reproduce_{min(groups, key=len) if groups else table}"


def load_tables(scale: str, results: Path, names: list[str] | None = None) -> list[dict[str, Any]]:
    """The assembled table JSONs of ``scale`` under ``results`` (registry order; absent ones skipped)."""
    from segbench.registry import table_names

    paths = [table_file(results, scale, name) for name in names or table_names()]
    return [read_json(p, "table JSON") for p in paths if p.is_file()]


def values_markdown(scale: str, tables: list[dict[str, Any]], link_root: str = "") -> str:
    """One row per table row: the headline column's reproduced value and the paper's.

    ``link_root`` prefixes the links to ``results/<scale>/tables/<table>.md`` (e.g. ``../`` from docs/).
    """
    from segbench.registry import load_registry

    registry = load_registry()
    lines = ["| table | row | reproduced (mean ± std, seeds) | paper |", "|---|---|---|---|"]
    for t in tables:
        spec = registry["tables"].get(t["table"], {})
        column = spec.get("headline", t["columns"][0])
        kind = table_kind(t)
        link = (
            f"[{t['table']}]({link_root}{table_file(Path('results'), scale, t['table'], '.md').as_posix()})"
        )
        for row in t["rows"]:
            if row.get("reference_only"):
                continue
            cell = row["values"][column]
            paper = kind.paper(cell.get("paper"), missing=MARKDOWN_MISSING)
            reproduced = MARKDOWN_MISSING if cell.get("mean") is None else kind.reproduced(cell)
            lines.append(f"| {link} {column} | {row['label']} | {reproduced} | {paper} |")
    return "\n".join(lines) + "\n"


def claims_count_markdown(scale: str, tables: list[dict[str, Any]]) -> str:
    """One sentence: how many of the paper's claims and of ours reproduced at ``scale``."""
    claims = [d for t in tables for d in t.get("directions", [])]
    theirs = count_verdicts([d for d in claims if d.get("source", "paper") == "paper"])
    ours = count_verdicts([d for d in claims if d.get("source") == "ours"])
    return (
        f"Claims at {scale}: the paper's {count_text(theirs)}; ours {count_text(ours)} "
        "(tests: `segbench.claims`; each table's page gives the rule).\n"
    )


def claims_markdown(scale: str, tables: list[dict[str, Any]]) -> str:
    """One row per claim: verdict, gap and interval, Holm-adjusted p, caveats, the command."""
    from segbench.registry import load_registry

    registry = load_registry()
    lines = [
        f"| table | claim | whose | verdict at {scale} | gap [90% interval] | p (Holm) | caveats | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    # the command names the scale unless it is the default one (the registry's default_scale)
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


def summary_markdown(scale: str, results: Path, tables: list[dict[str, Any]] | None = None) -> str:
    """The two Markdown tables (values, then directions) for every assembled table of ``scale``."""
    if tables is None:
        tables = load_tables(scale, results)
    return "\n".join(
        [values_markdown(scale, tables), claims_count_markdown(scale, tables), claims_markdown(scale, tables)]
    )


def curve_markdown(tables: list[dict[str, Any]]) -> str:
    """The error-vs-compute fit of every table that has one (:mod:`segbench.tables.compute_curve`), one
    bullet per error column under the table's name."""
    from segbench.tables.compute_curve import curve_sentences

    lines = []
    for t in tables:
        if t.get("compute_curve"):
            lines.append(f"Error against compute, {t['table']} at {t['scale']}:")
            lines.append("")
            lines += [f"- {s}" for s in curve_sentences(t["compute_curve"], table_kind(t).value)]
    return "\n".join(lines) if lines else f"No table here has an error-vs-compute fit {MARKDOWN_MISSING}."
