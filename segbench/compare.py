"""``segbench compare``: run a new method under exactly the protocol of a table's baseline rows.

The method (a plugin, see :mod:`segbench.plugins`) replaces one component of the table's *base row* (by
default the row with the paper's best value on the first column; ``base_row`` picks another). Every
baseline row and the method are trained and evaluated on the same data, schedule and seeds 0..n-1;
baseline runs already computed (same config hash) are reused. The result is a table of the baseline rows
and the method row (mean ± std over seeds) plus, for every baseline row and column, the per-seed paired
difference, tested and judged by the claims engine (:mod:`segbench.claims`), Holm-adjusted over all comparisons.

The method's code (distribution, version, source hash: :mod:`segbench.plugin_identity`) is in its runs'
config, so an edited plugin is retrained; the record names what the runs were evaluated on at the scale
(``evaluated_on``), the paper's own split (``paper_split``), seeds or folds, and every run instance with
its config hash and metrics file (``runs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbench.claims import ALPHA, INTERVAL_LEVEL, MIN_SEEDS, Claim, judge_all, std_floor, weigh
from segbench.engine.device import check_device
from segbench.engine.runner import ensure_evaluated
from segbench.errors import InputError
from segbench.formatting import COMPARISON_WORDS, MARKDOWN_MISSING, evidence_text, percent, table_kind
from segbench.io import write_json_atomic, write_text_atomic
from segbench.paths import child_path, compare_dir, results_root, run_dir
from segbench.paths import data_root as default_data_root
from segbench.plugin_identity import identity_hash, spec_slug
from segbench.plugin_probe import probe_method_run
from segbench.plugins import Plugin, method_run_config, plugin_identity, register_plugin
from segbench.provenance import provenance
from segbench.registry import MAX_SEEDS, evaluated_on, get_table, load_registry, resolve_run
from segbench.reporting.scale_text import sample_words
from segbench.tables.aggregate import metric_value, run_source, seed_summary


def compare_path(scale: str, table: str, spec: str, results: str | Path | None = None) -> Path:
    root = compare_dir(results_root(results), scale)
    return child_path(root, f"{table}--{spec_slug(spec)}", ".json", what="method")


def baseline_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows the method is compared with: every row with its own run(s) (not peers, not differences)."""
    return [row for row in table["rows"] if "run" in row or "column_runs" in row]


def choose_base_row(table: dict[str, Any], row_id: str | None) -> dict[str, Any]:
    rows = baseline_rows(table)
    if not rows:
        raise InputError(f"table {table['title']!r} has no rows with runs to compare against")
    if row_id is not None:
        for row in rows:
            if row["id"] == row_id:
                return row
        raise InputError(f"--base {row_id!r} is not a row with runs; choose one of {[r['id'] for r in rows]}")
    first = 0
    scored = [(row["paper_values"][first], row) for row in rows if row["paper_values"][first] is not None]
    if not scored:
        return rows[0]
    pick = min if table.get("lower_is_better") else max
    return pick(scored, key=lambda pair: pair[0])[1]


def _row_runs_per_column(row: dict[str, Any], columns: list[str]) -> dict[str, str]:
    if "run" in row:
        return {col: row["run"] for col in columns}
    return {col: row["column_runs"][col] for col in columns if col in row["column_runs"]}


COMPARE_RULE = (
    "per baseline and metric, the claim 'the method is better' tested by the claims engine (segbench.claims): "
    f"one-sided paired t-test over seeds at alpha {ALPHA:g}, Holm-adjusted over all the comparisons; "
    f"'better' when it passes, 'worse' when the {percent(INTERVAL_LEVEL)} interval of the gap lies below 0, otherwise "
    f"inconclusive; untested with fewer than {MIN_SEEDS} seeds"
)


def method_comparisons(
    table: dict[str, Any], baselines: list[dict[str, Any]], method_row: dict[str, Any]
) -> list[dict[str, Any]]:
    """The method against every baseline row on every column, judged as one Holm family."""
    lower = bool(table.get("lower_is_better", False))
    pairs, evidence = [], []
    for row in baselines:
        for col in table["columns"]:
            if col in row["values"] and col in method_row["values"]:
                a, b = method_row["values"][col], row["values"][col]
                claim = Claim(method_row["id"], row["id"], col, lower_is_better=lower)
                means = [m for m in (a["mean"], b["mean"]) if m is not None]
                evidence.append(
                    weigh(claim, a["per_seed"], b["per_seed"], floor=std_floor(table["metrics"][col], means))
                )
                pairs.append((row, col))
    out = []
    for (row, col), record in zip(pairs, judge_all(evidence), strict=True):
        out.append(
            {
                "baseline": row["id"],
                "baseline_label": row["label"],
                "metric": col,
                "better_direction": "lower" if lower else "higher",
                **record,
                "claim_verdict": record["verdict"],
                "verdict": COMPARISON_WORDS[record["verdict"]],
            }
        )
    return out


def run_comparison(
    spec: str,
    table_name: str,
    *,
    seeds: int = 3,
    scale: str | None = None,
    results: str | Path | None = None,
    data_root: str | Path | None = None,
    base_row: str | None = None,
    kind: str | None = None,
    device: str | None = None,
) -> Path:
    """Train/evaluate what is missing, then write ``results/<scale>/compare/<table>--<method>.{json,csv,md}``."""
    registry = load_registry()
    scale = scale or registry["default_scale"]
    table = get_table(table_name, registry)
    if seeds < 1:
        raise InputError(f"--seeds {seeds}: need at least 1 seed (3 or more for a paired test)")
    if seeds > MAX_SEEDS:
        raise InputError(f"--seeds {seeds}: at most {MAX_SEEDS} (each seed is a full training run per row)")
    check_device(device)
    plugin = register_plugin(spec, kind)
    data = default_data_root(data_root)
    base = choose_base_row(table, base_row)
    columns = table["columns"]
    # The plugin on the scale's real tile / image / RoI sizes: a mismatch shows before any training.
    for run in sorted(set(_row_runs_per_column(base, columns).values())):
        probe_method_run(plugin, method_run_config(resolve_run(run, scale, 0, registry), plugin))

    runs: dict[str, dict[str, Any]] = {}  # run instance -> where its numbers came from

    def evaluate(cfg: dict[str, Any]) -> tuple[dict[str, Any], Path]:
        from segbench.data import prepare

        prepare(cfg["dataset"]["name"], data, seed=0)
        out_dir = run_dir(scale, cfg["run_id"], results)
        metrics = ensure_evaluated(cfg, out_dir, data, device=device)
        runs[cfg["run_id"]] = run_source(out_dir / "metrics.json", metrics, results_root(results))
        return metrics["metrics"], out_dir / "metrics.json"

    def column_values(run_for_column: dict[str, str], method: Plugin | None) -> dict[str, list[float | None]]:
        values: dict[str, list[float | None]] = {col: [] for col in run_for_column}
        for seed in range(seeds):
            cache: dict[str, tuple[dict[str, Any], Path]] = {}
            for col, run in run_for_column.items():
                if run not in cache:
                    cfg = resolve_run(run, scale, seed, registry)
                    cache[run] = evaluate(method_run_config(cfg, method) if method else cfg)
                metrics, source = cache[run]
                value = metric_value(metrics, table["metrics"][col], source)
                values[col].append(value)  # None: not measured (null in the record, never a bare NaN)
        return values

    # The method first: a plugin that fails on real data stops the comparison before hours of baselines.
    method_values = column_values(_row_runs_per_column(base, columns), plugin)
    rows = []
    for row in baseline_rows(table):
        per_col = column_values(_row_runs_per_column(row, columns), None)
        rows.append(
            {
                "id": row["id"],
                "label": row["label"],
                "runs": sorted(set(_row_runs_per_column(row, columns).values())),
                "reference_only": False,
                "method": False,
                "values": {
                    col: {**seed_summary(v), "paper": p, "delta": None}
                    for col, p in zip(columns, row["paper_values"], strict=True)
                    if (v := per_col.get(col))
                },
            }
        )
    method_row = {
        "id": f"method_{plugin.name}",
        "label": f"{plugin.name} (new {plugin.kind}, on {base['label']})",
        "runs": [f"{run}+{plugin.name}" for run in sorted(set(_row_runs_per_column(base, columns).values()))],
        "reference_only": False,
        "method": True,
        "method_spec": plugin.spec,
        "values": {
            col: {**seed_summary(v), "paper": None, "delta": None} for col, v in method_values.items()
        },
    }
    rows.append(method_row)

    higher = not table.get("lower_is_better", False)
    comparisons = method_comparisons(table, rows[:-1], method_row)
    folds = registry["scales"][scale].get("cross_validation", {}).get("folds")
    method = {**plugin.as_dict(), "identity": plugin_identity(plugin)}

    out = compare_path(scale, table_name, spec, results)
    record = {
        "table": f"{table_name}--{spec_slug(spec)}",
        "compared_table": table_name,
        "title": f"{table['title']}: {plugin.name} against the baselines",
        "paper": table["paper"],
        "citation": registry["papers"][table["paper"]]["citation"],
        "scale": scale,
        "scale_description": registry["scales"][scale]["description"],
        # the paper's own split (what its numbers are on); ours are on evaluated_on, per scale
        "paper_split": table.get("split"),
        "evaluated_on": evaluated_on(table_name, scale, registry),
        "cross_validation_folds": folds,
        "sample_words": sample_words(folds),
        "columns": columns,
        "metrics": table["metrics"],
        "lower_is_better": not higher,
        "method": method,
        "base_row": base["id"],
        "seeds": list(range(seeds)),
        "statistics": COMPARE_RULE,
        "rows": rows,
        "comparisons": comparisons,
        "directions": [],
        "runs": dict(sorted(runs.items())),
        "provenance": provenance(
            {
                "method": method,
                "table": table_name,
                "base": base["id"],
                "runs": {run_id: r["config_hash"] for run_id, r in sorted(runs.items())},
            },
            seeds=list(range(seeds)),
            scale=scale,
        ),
    }
    write_json_atomic(out, record)
    write_text_atomic(out.with_suffix(".md"), comparison_markdown(record))
    write_text_atomic(out.with_suffix(".csv"), comparison_csv(record))
    return out


def direction_sentences(record: dict[str, Any]) -> list[str]:
    """One sentence per metric: which way is better, and what a positive gap means."""
    lower = bool(record.get("lower_is_better"))
    way, than = ("lower", "lower than") if lower else ("higher", "higher than")
    return [
        f"{col} ({record['metrics'][col]}): {way} is better; a gap > 0 means the method's {col} is "
        f"{than} the baseline's."
        for col in record["columns"]
    ]


def comparison_markdown(record: dict[str, Any]) -> str:
    """The comparison as Markdown: the rows (mean ± std over seeds), then each comparison's evidence."""
    kind = table_kind(record)
    cols = record["columns"]
    words = record.get("sample_words") or sample_words(record.get("cross_validation_folds"))
    identity = record["method"].get("identity")
    lines = [
        f"# {record['title']}",
        "",
        f"Scale: **{record['scale']}**; {words['many']} {record['seeds']}; method "
        f"`{record['method']['spec']}` ({record['method']['kind']}) replaces a component of row "
        f"`{record['base_row']}`; everything else is the baseline's protocol.",
        "",
        f"Evaluated on: {record.get('evaluated_on') or record.get('paper_split') or 'the paper split'}. "
        f"The paper's split: {record.get('paper_split') or 'not stated'}.",
    ]
    if identity:
        lines += [
            "",
            f"Method code: {identity_hash(identity)} ({len(identity['source_files'])} source files).",
        ]
    lines += [
        "",
        "| row | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for row in record["rows"]:
        cells = []
        for col in cols:
            v = row["values"].get(col)
            cells.append(MARKDOWN_MISSING if v is None else kind.mean_std(v, missing=MARKDOWN_MISSING))
        label = f"**{row['label']}**" if row["method"] else row["label"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    direction = "lower" if record.get("lower_is_better") else "higher"
    lines += [
        "",
        f"Comparisons ({direction} is better; gap = method − baseline, oriented so > 0 is better): "
        f"{record['statistics']}.",
        "",
        *(f"- {sentence}" for sentence in direction_sentences(record)),
        "",
        "| baseline | metric | evidence | verdict |",
        "|---|---|---|---|",
    ]
    for c in record["comparisons"]:
        lines.append(
            f"| {c['baseline_label']} | {c['metric']} | {evidence_text(c, kind)} | **{c['verdict']}** |"
        )
    return "\n".join(lines) + "\n"


def comparison_csv(record: dict[str, Any]) -> str:
    columns = [
        "baseline",
        "metric",
        "better_direction",
        "n",
        "gap",
        "sd_used",
        "interval_low",
        "interval_high",
    ]
    columns += ["t", "p_value", "p_adjusted", "verdict", "gap_per_seed"]
    lines = [",".join(columns)]
    for c in record["comparisons"]:
        iv = c.get("interval") or {}
        values = [c["baseline"], c["metric"], c["better_direction"], c["n"], c["gap"], c["sd_used"]]
        values += [iv.get("low"), iv.get("high"), c["t"], c["p_value"], c["p_adjusted"], c["verdict"]]
        values.append(" ".join(f"{v:.6g}" for v in c["gap_per_seed"]))
        lines.append(",".join("" if v is None else str(v) for v in values))
    return "\n".join(lines) + "\n"
