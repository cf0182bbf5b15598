"""Build one paper table from the metrics.json of its runs.

Each row's reproduced value per column is the mean over the run's seeds (std with ddof=1 where there
are several), beside the paper's value and the delta. COCO metrics are stored as fractions and shown
x 100 like the paper. A table's ``directions`` (the paper's claims, e.g. RoIAlign > RoIPool on AP75)
are reported as reproduced or not, with the gap in pooled standard deviations.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.io import read_json, sha256_file, write_json_atomic, write_text_atomic
from segbench.paths import child_path, results_root
from segbench.provenance import config_hash, provenance
from segbench.registry import (
    check_table_at_scale,
    get_table,
    load_registry,
    resolve_run,
    row_runs,
    run_id,
    seeds_for_run,
)
from segbench.trainlog import CONVERGENCE_RULE, TRAIN_LOG, log_convergence

PERCENT_PREFIXES = ("bbox.", "segm.", "keypoints.")
CONVERGED_COLUMN = "converged"  # beside the metric columns: did each row's training loss level off?


def metric_value(metrics: dict[str, Any], key: str, source: Path) -> float | None:
    """Look up ``"segm.AP"`` in a metrics dict; COCO fractions become percentages like the paper. A run
    without that kind of output at all (no ``segm`` for Faster R-CNN) gives ``None``: not applicable."""
    if key.split(".", 1)[0] not in metrics:
        return None
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"{source}: metric {key!r} missing; re-evaluate the run (segbench evaluate)")
        node = node[part]
    if node is None:
        return None
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
        "evaluated_on": table.get("evaluated_on"),
        "columns": table["columns"],
        "metrics": table["metrics"],
        "lower_is_better": bool(table.get("lower_is_better", False)),
        "convergence_rule": CONVERGENCE_RULE,
        "rows": rows,
        "directions": _directions(table, rows),
        "runs": run_provenance,
        "provenance": provenance(
            {"table": name, "runs": {k: v["config_hash"] for k, v in run_provenance.items()}},
            seeds=seeds,
            wall_time_s=wall,
            scale=scale,
        ),
    }


#: The absolute std floor per metric family: COCO AP in percentage points (0.1 AP, the paper's precision);
#: other metrics (U-Net's error rates and IoU, fractions) rely on the relative floor alone.
STD_FLOOR_ABS = {"bbox.": 0.1, "segm.": 0.1, "keypoints.": 0.1}
STD_FLOOR_REL = 0.01  # 1 % of the larger |mean| of the two rows
STD_RULE = (
    "gap / std, where std = max(pooled std of the rows with seed variance, "
    f"{STD_FLOOR_REL:.0%} of the larger |mean|, the metric's absolute floor); a deterministic row "
    "(std 0, e.g. a classical baseline) is left out of the pooling instead of halving the variance"
)
BASELINE_MARK = "(segbench baseline)"


def is_segbench_baseline(row: dict[str, Any]) -> bool:
    """A row the paper does not have: labelled a segbench baseline, or measured with no paper value at all."""
    values = row["values"].values()
    return BASELINE_MARK in row["label"] or (
        not row["reference_only"] and all(v["paper"] is None for v in values)
    )


def std_floor(metric_key: str, means: list[float]) -> float:
    absolute = next((v for prefix, v in STD_FLOOR_ABS.items() if metric_key.startswith(prefix)), 0.0)
    return max(absolute, STD_FLOOR_REL * max((abs(m) for m in means), default=0.0))


def pooled_value(records: list[dict[str, Any]], key: str) -> float | None:
    """The ISBI error ``key`` (``isbi.<metric>``) of the folds' held-out slices pooled (their per-threshold
    counts summed, :mod:`segbench.metrics.isbi_pooled`); ``None`` for other metrics or records without counts."""
    section, _, metric = key.partition(".")
    parts = [rec["metrics"].get(section, {}).get("counts") for rec in records]
    if section != "isbi" or not parts or any(p is None for p in parts):
        return None
    from segbench.metrics.isbi_pooled import pooled_isbi_metrics

    return float(pooled_isbi_metrics(parts)[metric])


def _directions(table: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each claim ``better > worse on metric``: its source (the paper's claim, or one against a segbench
    baseline), the gap with its seed spread, the paper's gap, the gap in (floored) std, a paired t-test
    over seeds where both rows have the same seeds, and the verdict."""
    from segbench.tables.statistics import paired_comparison

    by_id = {row["id"]: row for row in rows}
    sign = -1.0 if table.get("lower_is_better") else 1.0
    out = []
    for d in table.get("directions", []):
        d = {"kind": "better", **d}
        b_row, w_row = by_id[d["better"]], by_id[d["worse"]]
        better, worse = b_row["values"][d["metric"]], w_row["values"][d["metric"]]
        # the registry may say whose claim it is; otherwise a segbench baseline row makes it ours
        ours = is_segbench_baseline(b_row) or is_segbench_baseline(w_row)
        source = d.get("source") or ("ours" if ours else "paper")
        if d["kind"] == "equivalent":
            claim = f"{d['better']} ≈ {d['worse']} on {d['metric']} (within ±{d['margin']:g})"
        elif d["kind"] == "noninferior":
            claim = (
                f"{d['better']} no worse than {d['worse']} on {d['metric']} (within {NONINFERIOR_STD:g} std)"
            )
        else:
            claim = f"{d['better']} {'<' if sign < 0 else '>'} {d['worse']} on {d['metric']}"
        paper_gap = (
            sign * (better["paper"] - worse["paper"])
            if better["paper"] is not None and worse["paper"] is not None
            else None
        )
        entry: dict[str, Any] = {
            **d,
            "claim": claim,
            "source": source,
            "paper_gap": paper_gap,
            "gap": None,
            "gap_std": None,
            "gap_per_seed": [],
            "pooled_std": None,
            "std_floor": None,
            "std_used": None,
            "std_rule": STD_RULE,
            "test": None,
            "gap_in_std": None,
            "reproduced": None,
            "verdict": "not measured",
        }
        if better["mean"] is not None and worse["mean"] is not None:
            gap = sign * (better["mean"] - worse["mean"])
            entry["gap"] = gap
            b_seeds, w_seeds = better.get("per_seed") or [], worse.get("per_seed") or []
            paired = len(b_seeds) == len(w_seeds) >= 2 and all(v is not None for v in [*b_seeds, *w_seeds])
            if paired:
                per_seed = [sign * (b - w) for b, w in zip(b_seeds, w_seeds, strict=True)]
                entry["gap_per_seed"] = per_seed
                entry["gap_std"] = statistics.stdev(per_seed)
                result = paired_comparison(b_seeds, w_seeds, higher_is_better=sign > 0)
                entry["test"] = {k: result[k] for k in ("test", "n", "t", "p_value", "alpha", "significant")}
            stds = [s for s in (better["std"], worse["std"]) if s is not None]
            if len(stds) == 2:
                varying = [s for s in stds if s > 0]
                pooled = math.sqrt(sum(s * s for s in varying) / len(varying)) if varying else 0.0
                if not paired:
                    entry["gap_std"] = math.sqrt(sum(s * s for s in stds))
                floor = std_floor(table["metrics"][d["metric"]], [better["mean"], worse["mean"]])
                used = max(pooled, floor)
                entry.update(pooled_std=pooled, std_floor=floor, std_used=used)
                entry["gap_in_std"] = (
                    gap / used if used > 0 else (math.copysign(math.inf, gap) if gap else 0.0)
                )
            seeds = min(better["n"], worse["n"])
            if d["kind"] == "equivalent":
                entry["verdict"] = equivalence_verdict(gap, float(d["margin"]), seeds)
            elif d["kind"] == "noninferior":
                entry["verdict"] = noninferiority_verdict(gap, entry["std_used"], seeds)
            else:
                entry["verdict"] = direction_verdict(gap, entry["gap_in_std"])
            # an untested claim (too few seeds) is neither reproduced nor refuted
            untested = entry["verdict"].startswith("not tested")
            entry["reproduced"] = None if untested else entry["verdict"].startswith("reproduced")
        out.append(entry)
    return out


#: equivalence and non-inferiority claims: fewer seeds per row give "not tested" (a std from 1-2 seeds
#: is too rough to bound a shortfall with, and a margin alone ignores the spread)
MIN_CLAIM_SEEDS = 3


def equivalence_verdict(gap: float, margin: float, seeds: int = MIN_CLAIM_SEEDS) -> str:
    """``reproduced`` where the two means differ by at most ``margin``, else ``not reproduced``; ``not
    tested`` with fewer than 3 seeds in either row (one or two draws could fall within any margin)."""
    if seeds < MIN_CLAIM_SEEDS:
        return f"not tested (needs {MIN_CLAIM_SEEDS} seeds per row, has {seeds})"
    return "reproduced (within margin)" if abs(gap) <= margin else "not reproduced"


NONINFERIOR_STD = 2.0  # "no worse": the gap may fall short of zero by at most this many (floored) stds


def noninferiority_verdict(gap: float, std_used: float | None, seeds: int) -> str:
    """``reproduced`` where ``better`` is no worse than ``worse``: mean gap >= -2 std (the pooled std of the
    two rows, floored as for directions); ``not tested`` with fewer than 3 seeds in either row."""
    if seeds < MIN_CLAIM_SEEDS or std_used is None:
        return f"not tested (needs {MIN_CLAIM_SEEDS} seeds per row, has {seeds})"
    if gap >= -NONINFERIOR_STD * std_used:
        return f"reproduced (no worse within {NONINFERIOR_STD:g} std)"
    return "not reproduced"


SIGNIFICANT_STD = 2.0  # a direction counts as reproduced when its gap is at least 2 pooled stds


def direction_verdict(gap: float, gap_in_std: float | None) -> str:
    """``reproduced`` (gap >= 2 pooled std), ``within noise`` (right sign, < 2 std), ``not reproduced``
    (wrong sign or no gap); with one seed per row the sign alone decides, and the verdict says so."""
    if gap <= 0:
        return "not reproduced"
    if gap_in_std is None:
        return "reproduced (1 seed: sign only, untested)"
    return "reproduced" if gap_in_std >= SIGNIFICANT_STD else "within noise (< 2 std)"


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
        "",
        "Cells: reproduced mean ± std (seeds) / paper / delta."
        if not table.get("cross_validation_folds")
        else f"Cells: reproduced mean ± std over the {table['cross_validation_folds']} folds (seed k = fold k); "
        "pooled = the errors of all held-out slices together / paper / delta (of the mean).",
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
    for source, heading in (("paper", "The paper's claims"), ("ours", "Against our baselines")):
        group = [dirn for dirn in table["directions"] if dirn.get("source", "paper") == source]
        if not group:
            continue
        lines += ["", f"{heading}:", ""]
        for dirn in group:
            verdict = dirn["verdict"].replace("not reproduced", "NOT reproduced")
            gap = "" if dirn["gap"] is None else f", gap {dirn['gap']:+.3g}"
            if dirn.get("gap_std") is not None:
                gap += f" ± {dirn['gap_std']:.2g}"
            if dirn.get("paper_gap") is not None:
                gap += f" (paper {dirn['paper_gap']:+.3g})"
            sd = "" if dirn["gap_in_std"] is None else f" = {dirn['gap_in_std']:.1f} std"
            test = dirn.get("test")
            p = (
                f", paired t-test over {test['n']} seeds p = {test['p_value']:.2g}"
                if test and test.get("p_value") is not None
                else ""
            )
            lines.append(f"- {dirn['claim']}: **{verdict}**{gap}{sd}{p}")
    if converged:
        lines += [
            "",
            f"Converged: {table.get('convergence_rule', CONVERGENCE_RULE)}; "
            "yes / no / k of m run instances, with the mean relative change.",
        ]
    if table["directions"]:
        kinds = {d.get("kind", "better") for d in table["directions"]}
        rules = [f"reproduced when the gap is at least {SIGNIFICANT_STD:g} std"]
        if "noninferior" in kinds:
            rules.append(f"no worse: when the gap is at least -{NONINFERIOR_STD:g} std")
        if "equivalent" in kinds:
            rules.append("equivalent: when |gap| is within the claim's margin")
        if kinds & {"noninferior", "equivalent"}:
            rules.append(f"these two need {MIN_CLAIM_SEEDS} seeds per row")
        lines += ["", f"Test: {STD_RULE}; {'; '.join(rules)}."]
    prov = table["provenance"]
    lines += [
        "",
        f"Provenance: commit `{prov['git_commit']}`, device {prov['device']}, seeds {prov['seeds']}, "
        f"compute {prov['wall_time_s']} s (train + eval, summed over runs), "
        f"torch {prov['package_versions'].get('torch')}, created {prov['created_utc']}.",
        "",
    ]
    return "\n".join(lines)


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


def write_table(name: str, scale: str, results: str | Path | None = None) -> Path:
    """Assemble and write ``results/<scale>/tables/<name>.{json,csv,md}`` atomically; returns the JSON path."""
    table = assemble_table(name, scale, results)
    out = child_path(results_root(results), scale, what="scale") / "tables"
    write_json_atomic(child_path(out, name, ".json", what="table"), table)
    write_text_atomic(child_path(out, name, ".csv", what="table"), to_csv(table))
    write_text_atomic(child_path(out, name, ".md", what="table"), to_markdown(table))
    return out / f"{name}.json"
