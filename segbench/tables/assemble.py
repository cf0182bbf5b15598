"""Build one paper table from the metrics.json of its runs.

Each row's reproduced value per column is the mean over the run's seeds (std with ddof=1 where there
are several), beside the paper's value and the delta. COCO metrics are stored as fractions and shown
x 100 like the paper. A table's ``directions`` (the paper's claims, e.g. RoIAlign > RoIPool on AP75)
are reported as reproduced or not, with the gap in pooled standard deviations.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segbench.claims import TEST_RULE, count_text, count_verdicts, evidence_text, verdict_of
from segbench.errors import InputError
from segbench.io import dumps, json_text, read_json, sha256_file, write_text_atomic
from segbench.paths import child_path, results_root
from segbench.provenance import config_hash, provenance
from segbench.registry import (
    check_table_at_scale,
    evaluated_on,
    get_table,
    load_registry,
    resolve_run,
    row_runs,
    run_id,
    seeds_for_run,
)
from segbench.tables.caveats import first_config
from segbench.trainlog import CONVERGENCE_RULE, TRAIN_LOG, log_convergence

PERCENT_PREFIXES = ("bbox.", "segm.", "keypoints.")
CONVERGED_COLUMN = "converged"  # beside the metric columns: did each row's training loss level off?


def metric_value(metrics: dict[str, Any], key: str, source: Path) -> float | None:
    """Look up ``"segm.AP"`` in a metrics dict; COCO fractions become percentages like the paper. A run
    without that kind of output at all (no ``segm`` for Faster R-CNN) gives ``None``: not applicable. A
    value that is not a finite number (NaN, a string) is one line naming the run (``source``) and the key."""
    if key.split(".", 1)[0] not in metrics:
        return None
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"{source}: metric {key!r} missing; re-evaluate the run (segbench evaluate)")
        node = node[part]
    if node is None:
        return None
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        raise InputError(
            f"{source}: run {source.parent.name}: metric {key!r} is {node!r}, not a finite number; "
            f"re-evaluate the run (segbench evaluate --run {source.parent.name.rsplit('-seed', 1)[0]} ...) "
            "or restore the file"
        )
    value = float(node)
    return value * 100.0 if key.startswith(PERCENT_PREFIXES) else value


def seed_summary(values: list[float | None]) -> dict[str, Any]:
    """Mean, std (ddof=1, only with several seeds) and count over the finite per-seed values."""
    clean = [v for v in values if v is not None and math.isfinite(v)]
    if not clean:
        return {"mean": None, "std": None, "n": 0, "per_seed": values}
    std = statistics.stdev(clean) if len(clean) > 1 else None
    return {"mean": statistics.fmean(clean), "std": std, "n": len(clean), "per_seed": values}


def converged_cell(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's ``converged`` entry from the :func:`segbench.trainlog.log_convergence` of its run instances:
    ``text`` ``yes`` / ``no`` / ``k/m`` over the measurable ones with their mean relative change
    (``yes (-1.2%)``), ``n/a`` where none has a long enough loss log, ``-`` for a row without runs."""
    measured = [s for s in per_seed if s["converged"] is not None]
    changes = [s["relative_change"] for s in measured if s["relative_change"] is not None]
    change = statistics.fmean(changes) if changes else None
    count = sum(bool(s["converged"]) for s in measured)
    if not per_seed:
        text = "-"
    elif not measured:
        text = "n/a"
    else:
        verdict = "yes" if count == len(measured) else "no" if count == 0 else f"{count}/{len(measured)}"
        text = verdict + ("" if change is None else f" ({change:+.1%})")
    return {
        "text": text,
        "converged": count,
        "measured": len(measured),
        "n": len(per_seed),
        "relative_change": change,
        "per_seed": per_seed,
    }


def trained_at(run_dir: Path) -> dict[str, Any] | None:
    """Where a run instance was trained: commit, device and host of its ``train_done.json`` provenance;
    ``None`` without that record (a run assembled from its metrics.json alone)."""
    path = run_dir / "train_done.json"
    if not path.is_file():
        return None
    prov = read_json(path, "train record").get("provenance") or {}
    return {key: prov.get(key) for key in ("git_commit", "device", "host")}


def _load_run_metrics(run: str, scale: str, root: Path, registry: dict[str, Any]) -> list[tuple[Path, dict]]:
    out = []
    for seed in seeds_for_run(run, scale, registry):
        path = root / scale / "runs" / run_id(run, seed) / "metrics.json"
        if not path.exists():
            raise InputError(
                f"{path}: missing; produce it with `segbench train --run {run} --scale {scale} "
                f"--seed {seed}` then `segbench evaluate ...` (or snakemake reproduce_<table>)"
            )
        record = read_json(path, "run metrics")
        expected = config_hash(resolve_run(run, scale, seed, registry))
        if record.get("config_hash") not in (expected, None):
            raise InputError(
                f"{path}: stale, computed with config {record.get('config_hash')} but the registry now "
                f"gives {expected}; retrain: `segbench train --run {run} --scale {scale} --seed {seed} "
                "--force` then `segbench evaluate` (snakemake reruns it by itself)"
            )
        out.append((path, record))
    return out


def assemble_table(name: str, scale: str, results: str | Path | None = None) -> dict[str, Any]:
    """The table ``name`` at ``scale`` as a JSON-ready dict."""
    registry = load_registry()
    table = get_table(name, registry)
    check_table_at_scale(name, scale, registry)
    root = results_root(results)
    cache: dict[str, list[tuple[Path, dict]]] = {}

    def seed_values(run: str, column: str) -> list[float | None]:
        if run not in cache:
            cache[run] = _load_run_metrics(run, scale, root, registry)
        return [metric_value(rec["metrics"], table["metrics"][column], path) for path, rec in cache[run]]

    folds = registry["scales"][scale].get("cross_validation", {}).get("folds")

    def convergence(run: str) -> list[dict[str, Any]]:
        if run not in cache:
            cache[run] = _load_run_metrics(run, scale, root, registry)
        return [
            {"run_id": path.parent.name, **log_convergence(path.parent / TRAIN_LOG)} for path, _ in cache[run]
        ]

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
                CONVERGED_COLUMN: converged_cell([s for run in row_runs(row) for s in convergence(run)]),
            }
        )

    runs_used = sorted({r for row in table["rows"] for r in row_runs(row)})
    run_provenance = {
        rec["run_id"]: {
            "config_hash": rec.get("config_hash"),
            "git_commit": rec.get("provenance", {}).get("git_commit"),
            "device": rec.get("provenance", {}).get("device"),
            "host": rec.get("provenance", {}).get("host"),
            # where the run was trained (its train_done.json), beside its evaluation's commit and device above
            "trained_at": trained_at(path.parent),
            "train_wall_time_s": rec.get("train_wall_time_s"),
            "eval_wall_time_s": rec.get("provenance", {}).get("wall_time_s"),
            # what this table was assembled from: a later retrain changes it (segbench status)
            "metrics_sha256": sha256_file(path),
            "metrics_file": str(path.relative_to(root.parent)) if root.parent in path.parents else str(path),
        }
        for run in runs_used
        for path, rec in cache.get(run, [])
    }
    wall = sum((p["train_wall_time_s"] or 0) + (p["eval_wall_time_s"] or 0) for p in run_provenance.values())
    seeds = sorted({s for run in runs_used for s in seeds_for_run(run, scale, registry)})
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
        "convergence_rule": CONVERGENCE_RULE,
        "rows": rows,
        "directions": _claims(
            table,
            rows,
            {run: [rec for _, rec in cache.get(run, [])] for run in runs_used},
            {
                run: cfg
                for run in runs_used
                if (cfg := first_config(run, scale, root, seeds_for_run(run, scale, registry))) is not None
            },
        ),
        "runs": run_provenance,
        "provenance": provenance(
            {"table": name, "runs": {k: v["config_hash"] for k, v in run_provenance.items()}},
            seeds=seeds,
            wall_time_s=wall,
            scale=scale,
        ),
    }


BASELINE_MARK = "(segbench baseline)"


def is_segbench_baseline(row: dict[str, Any]) -> bool:
    """A row the paper does not have: labelled a segbench baseline, or measured with no paper value at all."""
    values = row["values"].values()
    return BASELINE_MARK in row["label"] or (
        not row["reference_only"] and all(v["paper"] is None for v in values)
    )


def pooled_value(records: list[dict[str, Any]], key: str) -> float | None:
    """The ISBI error ``key`` (``isbi.<metric>``) of the folds' held-out slices pooled (their per-threshold
    counts summed, :mod:`segbench.metrics.isbi_pooled`); ``None`` for other metrics or records without counts."""
    section, _, metric = key.partition(".")
    parts = [rec["metrics"].get(section, {}).get("counts") for rec in records]
    if section != "isbi" or not parts or any(p is None for p in parts):
        return None
    from segbench.metrics.isbi_pooled import pooled_isbi_metrics

    return float(pooled_isbi_metrics(parts)[metric])


def _claims(
    table: dict[str, Any],
    rows: list[dict[str, Any]],
    records: dict[str, list[dict[str, Any]]],
    configs: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each registered claim of the table tested by :mod:`segbench.claims` (Holm-adjusted within the
    table), with its source (the paper's claim, or one against a segbench baseline), the paper's gap and
    the caveats computed from the two sides' run records (:mod:`segbench.tables.caveats`)."""
    from segbench.claims import Claim, judge_all, std_floor, weigh
    from segbench.tables.caveats import convergence_caveat, origin_caveats, protocol_caveat, row_run

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


def format_value(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_reproduced(cell: dict[str, Any], digits: int) -> str:
    """A table cell's reproduced value as ``mean ± std (seeds)`` (no ``± std`` for a single seed)."""
    std = f" ± {format_value(cell['std'], digits)}" if cell["std"] is not None else ""
    return f"{format_value(cell['mean'], digits)}{std} ({cell['n']})"


def _digits(table: dict[str, Any]) -> int:
    return 4 if table["paper"] == "unet" else 1


def to_markdown(table: dict[str, Any]) -> str:
    d = _digits(table)
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
        "seed k = fold k); pooled = the errors of all held-out slices together / paper / delta (of the mean).",
        "",
    ]
    converged = any(CONVERGED_COLUMN in row for row in table["rows"])  # tables assembled before: none
    extra = [CONVERGED_COLUMN] if converged else []
    lines.append("| row | " + " | ".join([*table["columns"], *extra]) + " |")
    lines.append("|---|" + "---|" * (len(table["columns"]) + len(extra)))
    for row in table["rows"]:
        cells = []
        for col in table["columns"]:
            v = row["values"][col]
            if row["reference_only"]:
                cells.append(f"(paper {format_value(v['paper'], d)})")
                continue
            pooled = f"; pooled {format_value(v['pooled'], d)}" if v.get("pooled") is not None else ""
            cells.append(
                f"{format_reproduced(v, d)}{pooled} / {format_value(v['paper'], d)} / "
                f"{format_value(v['delta'], d)}"
            )
        if converged:
            cells.append(row.get(CONVERGED_COLUMN, {}).get("text", "-"))
        label = row["label"] + (" *(reference)*" if row["reference_only"] else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    spec = ".3g" if table["paper"] == "unet" else ".2f"
    for source, heading in (("paper", "The paper's claims"), ("ours", "Against our baselines")):
        group = [dirn for dirn in table["directions"] if dirn.get("source", "paper") == source]
        if not group:
            continue
        lines += ["", f"{heading}:", ""]
        for dirn in group:
            verdict = verdict_of(dirn)
            paper = "" if dirn.get("paper_gap") is None else f"; paper's gap {dirn['paper_gap']:+.3g}"
            caveats = "".join(f" ⚠ {c}." for c in dirn.get("caveats", []))
            lines.append(
                f"- {dirn['claim']}: **{verdict.words}** ({dirn.get('verdict_reason', '')}); "
                f"{evidence_text(dirn, spec)}{paper}.{caveats}"
            )
    if converged:
        lines += [
            "",
            f"Converged: {table.get('convergence_rule', CONVERGENCE_RULE)}; "
            "yes / no / k of m run instances, with the mean relative change.",
        ]
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
        for col in table["columns"]:
            v = row["values"][col]
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
                    v["paper"],
                    v["delta"],
                    v.get("pooled"),
                    row.get(CONVERGED_COLUMN, {}).get("text"),
                ]
            )
    return buf.getvalue()


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
    out = child_path(results_root(results), scale, what="scale") / "tables"
    paths = {ext: child_path(out, name, f".{ext}", what="table") for ext in ("json", "csv", "md")}
    try:
        recorded = read_json(paths["json"], "table JSON") if paths["json"].is_file() else None
    except InputError:  # unreadable: replaced
        recorded = None
    if isinstance(recorded, dict) and table_content(recorded) == table_content(table):
        table = recorded
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
