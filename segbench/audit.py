"""``segbench audit``: retrain committed run instances from their recorded config and check the records.

Each audited instance (``results/<scale>/runs/<run>-seed<k>/``) is trained again from the config its
``config.json`` records, through :func:`segbench.engine.runner.train_run` and
:func:`~segbench.engine.runner.evaluate_run`, into a separate results root (a temporary folder, never the
committed one), then compared with the committed ``train_log.jsonl`` and ``metrics.json``:

- **bit for bit** where the machine signature the committed training recorded
  (``provenance.machine_signature_hash`` of ``train_done.json``, :func:`segbench.provenance.machine_signature`)
  equals this machine's: every logged value (losses, learning rates; not the step times) and every metric
  must be equal;
- **statistically** otherwise (and for records that predate the signature: "unknown"): each *headline*
  metric (the registry tables' columns the run feeds, in the tables' units) must satisfy :data:`RULE`:
  ``|regenerated - committed| <= Z_LIMIT * sqrt(2) * sd``, the committed value being this seed's and ``sd``
  the std over the run's committed seeds, floored as the tables floor it (:func:`segbench.claims.std_floor`).
  ``sqrt(2)``: both values are draws, at worst independent ones. The other metrics are reported (how many
  differ, the largest difference) and never fail the audit. What varied between the committed run and the
  rerun is said in one line: the machine (which signature fields), the pretrained backbone, the data, the
  thread count.

Either way the committed record must be the one the committed tables were assembled from
(:func:`record_integrity`: the sha256 each table recorded for the run's ``metrics.json``); an edited record
fails naming the headline metrics whose values differ from the table's. That, not the statistics, is what
catches an edited value: with 3 seeds an edit also widens the spread the statistical rule would use.

The audit runs with the thread count the committed training recorded (parallel reductions depend on it).
"""

from __future__ import annotations

import contextlib
import math
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.io import read_json, read_jsonl, write_json_atomic
from segbench.paths import record_run_dir, results_root, runs_dir, tables_dir
from segbench.provenance import config_hash, machine_signature, signature_hash
from segbench.registry import split_run_id

TIMING_KEYS = frozenset({"time", "data_time", "seconds"})  # wall times: never equal across reruns
Z_LIMIT = 3.0  # how many standard deviations of a difference of two draws a headline metric may move
RULE = (
    f"each headline metric: |regenerated - committed| <= {Z_LIMIT:g} * sqrt(2) * sd, sd = the std over the "
    "run's committed seeds, floored as in the tables (max(1% of |mean|, 0.1 AP for COCO metrics)); other "
    "metrics are reported, never judged; the committed record must be the one its tables were assembled from"
)
BIT_FOR_BIT, STATISTICAL, INTEGRITY = "bit-for-bit", "statistical", "record integrity"


# -- which instances --------------------------------------------------------------------------------------
def committed_instances(scale: str, results: str | Path | None = None) -> list[str]:
    """Run ids (``<run>-seed<k>``) with committed ``config.json`` and ``metrics.json`` at ``scale``."""
    runs = runs_dir(results_root(results), scale)
    return sorted(p.parent.name for p in runs.glob("*/metrics.json") if (p.parent / "config.json").exists())


def select_instances(
    scale: str,
    runs: list[str] | None = None,
    sample: int | None = None,
    seed: int = 0,
    results: str | Path | None = None,
) -> list[str]:
    """The run ids to audit: the named ones (a run name stands for all its committed seeds) or a seeded
    random sample of ``sample`` committed instances."""
    available = committed_instances(scale, results)
    if not available:
        raise InputError(
            f"no committed run records under {runs_dir(results_root(results), scale)}; nothing to audit"
        )
    if sample is not None:
        if sample < 1:
            raise InputError(f"--sample {sample}: audit at least one run (--sample 1)")
        return sorted(random.Random(seed).sample(available, min(sample, len(available))))
    chosen: list[str] = []
    for name in runs or []:
        matches = [name] if name in available else [r for r in available if split_run_id(r)[0] == name]
        if not matches:
            raise InputError(
                f"--runs {name}: no committed record at scale {scale}; choose one of "
                f"{', '.join(available[:8])}{' ...' if len(available) > 8 else ''}"
            )
        chosen.extend(m for m in matches if m not in chosen)
    if not chosen:
        raise InputError("name runs to audit (--runs RUN_ID[,RUN_ID...]) or --sample N")
    return chosen


# -- comparisons ----------------------------------------------------------------------------------------
def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"ctc": {"seg": 0.3}}`` -> ``{"ctc.seg": 0.3}`` (lists stay whole)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


def _difference(a: Any, b: Any) -> float | None:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) if math.isfinite(a) and math.isfinite(b) else math.inf
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        diffs = [_difference(x, y) for x, y in zip(a, b, strict=True)]
        return max((d for d in diffs if d is not None), default=None)
    return None


def compare_metrics(committed: dict[str, Any], regenerated: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric (flattened key) whose value differs, with both values and the absolute difference."""
    old, new = flatten(committed), flatten(regenerated)
    return [
        {
            "metric": key,
            "committed": old.get(key),
            "regenerated": new.get(key),
            "abs_diff": _difference(old.get(key), new.get(key)),
        }
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def _log_records(path: Path) -> list[dict[str, Any]]:
    return (
        [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_jsonl(path)]
        if path.exists()
        else []
    )


def compare_logs(committed: Path, regenerated: Path) -> dict[str, Any]:
    """Lines compared (step times left out), and the first diverging line: its iteration, the keys that
    differ with both values and the absolute difference, and the largest loss difference over the log."""
    old, new = _log_records(committed), _log_records(regenerated)
    out: dict[str, Any] = {
        "committed_lines": len(old),
        "regenerated_lines": len(new),
        "first_divergence": None,
        "max_loss_abs_diff": 0.0,
        "diverging_lines": 0,
    }
    for index, (a, b) in enumerate(zip(old, new, strict=False)):
        if a == b:
            continue
        out["diverging_lines"] += 1
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if out["first_divergence"] is None:
            out["first_divergence"] = {
                "line": index + 1,
                "iteration": a.get("iteration", b.get("iteration", a.get("event"))),
                "differences": {
                    k: {
                        "committed": a.get(k),
                        "regenerated": b.get(k),
                        "abs_diff": _difference(a.get(k), b.get(k)),
                    }
                    for k in keys
                },
            }
        loss = _difference(a.get("loss"), b.get("loss"))
        if loss is not None:
            out["max_loss_abs_diff"] = max(out["max_loss_abs_diff"], loss)
    if len(old) != len(new) and out["first_divergence"] is None:
        out["first_divergence"] = {
            "line": min(len(old), len(new)) + 1,
            "iteration": None,
            "differences": {"lines": {"committed": len(old), "regenerated": len(new)}},
        }
    out["identical"] = out["first_divergence"] is None
    return out


def signature_differences(recorded: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    if not recorded:
        return {}
    return {
        k: {"recorded": recorded.get(k), "current": current.get(k)}
        for k in sorted(set(recorded) | set(current))
        if recorded.get(k) != current.get(k)
    }


def headline_metrics(run: str, registry: dict[str, Any] | None = None) -> list[str]:
    """The metric keys the registry's tables read from ``run`` (its table columns), each once."""
    from segbench.registry import load_registry, row_runs

    reg = registry or load_registry()
    keys: list[str] = []
    for table in reg["tables"].values():
        if any(run in row_runs(row) for row in table["rows"]):
            keys.extend(k for k in table.get("metrics", {}).values() if k not in keys)
    return keys


def seed_values(runs_dir: Path, run: str, key: str) -> dict[int, float]:
    """The committed values of headline metric ``key`` (tables' units) per committed seed of ``run``."""
    from segbench.tables.aggregate import metric_value

    values: dict[int, float] = {}
    for path in sorted(runs_dir.glob(f"{run}-seed*/metrics.json")):
        name, seed = split_run_id(path.parent.name)
        if name != run:
            continue
        try:
            value = metric_value(read_json(path, "run metrics").get("metrics", {}), key, path)
        except (InputError, TypeError, ValueError):
            value = None
        if value is not None and math.isfinite(value):
            values[seed] = value
    return values


def statistical_check(run: str, seed: int, runs_dir: Path, regenerated: dict[str, Any]) -> list[dict]:
    """Each headline metric of the rerun of ``run`` seed ``seed`` against its committed value (:data:`RULE`)."""
    from segbench.claims import std_floor
    from segbench.tables.aggregate import metric_value

    checks = []
    for key in headline_metrics(run):
        committed = seed_values(runs_dir, run, key)
        try:
            value = metric_value(regenerated, key, Path("regenerated metrics"))
        except (InputError, TypeError, ValueError):
            value = None
        check: dict[str, Any] = {"metric": key, "regenerated": value, "committed": committed.get(seed)}
        check["committed_seeds"] = len(committed)
        if value is None and committed.get(seed) is None:  # not applicable (no masks in Faster R-CNN)
            checks.append({**check, "ok": True, "applicable": False})
            continue
        if value is None or committed.get(seed) is None or not math.isfinite(value):
            checks.append({**check, "ok": False, "why": "missing on one side"})
            continue
        observed = statistics.stdev(committed.values()) if len(committed) > 1 else 0.0
        sd = max(observed, std_floor(key, [statistics.fmean(committed.values()), value]))
        gap = value - committed[seed]
        # no spread and no floor (a metric at exactly 0 on every seed): only equality passes
        z = gap / (math.sqrt(2) * sd) if sd > 0 else (0.0 if gap == 0 else math.copysign(math.inf, gap))
        checks.append(
            {
                **check,
                "committed_mean": statistics.fmean(committed.values()),
                "committed_sd": statistics.stdev(committed.values()) if len(committed) > 1 else None,
                "sd_used": sd,
                "sd_floored": sd > observed,
                "z": z,
                "ok": abs(z) <= Z_LIMIT,
            }
        )
    return checks


def record_integrity(root: Path, scale: str, run_id: str) -> list[dict[str, Any]]:
    """Whether the committed ``metrics.json`` of ``run_id`` is the one each committed table that reads it
    was assembled from (the sha256 the table recorded); for a changed one, the headline values that
    differ from the table's (or the bare change, where no headline value does)."""
    from segbench.io import sha256_file
    from segbench.tables.aggregate import metric_value

    metrics_path = record_run_dir(root, scale, run_id) / "metrics.json"
    actual = sha256_file(metrics_path)
    record = read_json(metrics_path, "run metrics").get("metrics", {})
    run, seed = split_run_id(run_id)
    issues: list[dict[str, Any]] = []
    for table_path in sorted(tables_dir(root, scale).glob("*.json")):
        table = read_json(table_path, "table")
        entry = (table.get("runs") or {}).get(run_id)
        if not isinstance(entry, dict) or entry.get("metrics_sha256") in (None, actual):
            continue
        seeds = sorted(split_run_id(r)[1] for r in table["runs"] if split_run_id(r)[0] == run)
        found = []
        for row in table.get("rows", []):
            if run not in (row.get("runs") or []) or seed not in seeds:
                continue
            for column, cell in (row.get("values") or {}).items():
                key = (table.get("metrics") or {}).get(column)
                per_seed = (cell or {}).get("per_seed") or []
                index = seeds.index(seed)
                if key is None or index >= len(per_seed) or per_seed[index] is None:
                    continue
                try:
                    value = metric_value(record, key, metrics_path)
                except (InputError, TypeError, ValueError):
                    value = None
                if value is None or not math.isclose(value, per_seed[index], rel_tol=1e-12, abs_tol=1e-12):
                    found.append(
                        {
                            "table": table["table"],
                            "metric": key,
                            "table_value": per_seed[index],
                            "record_value": value,
                        }
                    )
        issues.extend(found or [{"table": table.get("table", table_path.stem), "metric": None}])
    return issues


# -- one instance -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """torch's thread count set to ``count`` (the recorded one) for the rerun, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if count and count != before:
        torch.set_num_threads(int(count))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def expected_seconds(committed: Path) -> float | None:
    """How long the committed run took to train and evaluate (its records' wall times), if recorded."""
    total = 0.0
    for name in ("train_done.json", "metrics.json"):
        path = committed / name
        wall = (
            read_json(path, "run record").get("provenance", {}).get("wall_time_s") if path.exists() else None
        )
        if not isinstance(wall, (int, float)):
            return None
        total += float(wall)
    return total


def stage_backbone(cfg: dict[str, Any], committed_root: Path, work: Path) -> dict[str, Any] | None:
    """Copy the committed pretrained backbone the run starts from (file and record) into the rerun's
    results root, so the rerun fine-tunes from the very weights the committed run did instead of
    pretraining them again on this CPU (which gives other weights)."""
    import shutil

    if not cfg.get("pretraining"):
        return None
    from segbench.engine.pretrain import backbone_identity, restore_from_stored
    from segbench.paths import pretrained_weights, pretraining_scale, stored_weights

    source = pretrained_weights(committed_root, pretraining_scale(cfg), cfg["pretraining"])
    target = pretrained_weights(work, pretraining_scale(cfg), cfg["pretraining"])
    target.parent.mkdir(parents=True, exist_ok=True)
    restore_from_stored(source)  # a clone holds the committed .pt.xz; the .pt is decompressed on first use
    for src, dst in (
        (source.with_suffix(".json"), target.with_suffix(".json")),
        (stored_weights(source), stored_weights(target)),
        (source, target),
    ):
        if src.exists() and not dst.exists():
            shutil.copy2(src, dst)
    return backbone_identity(source) if source.exists() else None


def what_varied(
    recorded: dict[str, Any], rerun: dict[str, Any], sig_diff: dict[str, Any], recorded_known: bool
) -> dict[str, Any]:
    """Between the committed training and the rerun: the machine (signature fields), the backbone file,
    the data, the thread count; each ``same``, ``differs`` (with both sides) or ``unknown`` (unrecorded)."""

    def side(key: str, field: str) -> tuple[Any, Any]:
        return ((recorded.get(key) or {}).get(field), (rerun.get(key) or {}).get(field))

    out: dict[str, Any] = {}
    if not recorded_known:
        out["machine"] = "unknown"
    else:
        out["machine"] = {"differs": sorted(sig_diff)} if sig_diff else "same"
    for name, key, field in (("backbone", "backbone", "sha256"), ("data", "dataset", "sha256")):
        a, b = side(key, field)
        if a is None and b is None:
            continue  # nothing to compare: no pretrained backbone, or no dataset identity
        out[name] = "unknown" if a is None else "same" if a == b else {"committed": a, "rerun": b}
    a, b = (
        (recorded.get("machine_signature") or {}).get("threads"),
        (rerun.get("machine_signature") or {}).get("threads"),
    )
    out["threads"] = "same" if a == b else {"committed": a, "rerun": b}
    return out


def audit_instance(
    scale: str,
    run_id: str,
    work: Path,
    data: Path,
    *,
    results: str | Path | None = None,
    device: str | None = None,
    echo: Any = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Retrain and evaluate one committed instance under ``work`` and compare it with its records;
    ``echo`` gets a line per stage. ``threads`` overrides the recorded thread count (another float
    summation order: on one machine, a stand-in for another CPU's arithmetic)."""
    from segbench.engine.runner import evaluate_run, train_run

    say = echo or (lambda line: None)
    root = results_root(results)
    committed = record_run_dir(root, scale, run_id)
    record = read_json(committed / "config.json", "run config")
    cfg = record["config"]
    if config_hash(cfg) != record.get("config_hash"):
        raise InputError(
            f"{committed / 'config.json'}: its config hashes to {config_hash(cfg)}, not the recorded "
            f"{record.get('config_hash')}; the record was edited, so there is nothing to rerun"
        )
    metrics = read_json(committed / "metrics.json", "run metrics")
    done_path = committed / "train_done.json"
    trained = read_json(done_path, "train record") if done_path.exists() else {}
    recorded_prov = trained.get("provenance") or record.get("provenance") or {}
    recorded_sig, recorded_hash = (
        recorded_prov.get("machine_signature"),
        recorded_prov.get("machine_signature_hash"),
    )

    target = record_run_dir(work, scale, run_id)
    if target.resolve() == committed.resolve():
        raise InputError(
            f"{target}: the audit never writes into the committed results; choose another --work-dir"
        )
    integrity = record_integrity(root, scale, run_id)
    if integrity:  # an edited record: nothing a rerun could confirm, so fail now, before minutes of training
        report = {
            "run_id": run_id,
            "run": cfg["run"],
            "seed": cfg["seed"],
            "scale": scale,
            "config_hash": record["config_hash"],
            "mode": INTEGRITY,
            "integrity": integrity,
            "passed": False,
        }
        report["verdict"] = "\n".join(
            [f"{run_id}: FAIL {INTEGRITY}; not rerun: the record is not the one its tables were built from"]
            + _integrity_lines(integrity)
        )
        return report
    staged = stage_backbone(cfg, root, work)
    if cfg.get("pretraining") and staged is None:
        say(
            f"  {run_id}: no committed {cfg['pretraining']['backbone']} weights: pretraining them first "
            "(minutes; the rerun then starts from other weights than the committed run did)"
        )
    start = time.perf_counter()
    with _threads(threads or (recorded_sig or {}).get("threads")):
        current_sig = machine_signature()
        iterations = (cfg.get("schedule") or {}).get("iterations")
        say(
            f"  {run_id}: training ({iterations} iterations) ..."
            if iterations
            else f"  {run_id}: fitting ..."
        )
        train_run(cfg, target, data, device=device, force=target.exists())
        say(f"  {run_id}: evaluating ({time.perf_counter() - start:.0f} s so far) ...")
        evaluate_run(cfg, target, data, device=device)
    wall = time.perf_counter() - start
    current_hash = signature_hash(current_sig)
    regenerated = read_json(target / "metrics.json", "run metrics")
    rerun_trained = read_json(target / "train_done.json", "train record")

    mode = BIT_FOR_BIT if recorded_hash == current_hash else STATISTICAL
    log = compare_logs(committed / "train_log.jsonl", target / "train_log.jsonl")
    metric_diffs = compare_metrics(metrics.get("metrics", {}), regenerated.get("metrics", {}))
    if metrics.get("config_hash") != record.get("config_hash"):
        metric_diffs.insert(
            0,
            {
                "metric": "config_hash",
                "committed": metrics.get("config_hash"),
                "regenerated": regenerated.get("config_hash"),
                "abs_diff": None,
            },
        )
    sig_diff = signature_differences(recorded_sig, current_sig)
    report: dict[str, Any] = {
        "run_id": run_id,
        "run": cfg["run"],
        "seed": cfg["seed"],
        "scale": scale,
        "config_hash": record["config_hash"],
        "mode": mode,
        "wall_time_s": round(wall, 3),
        "regenerated_dir": str(target),
        "machine": {
            "recorded_hash": recorded_hash or "unknown",
            "current_hash": current_hash,
            "differences": sig_diff,
        },
        "varied": what_varied(
            recorded_prov, rerun_trained.get("provenance", {}), sig_diff, bool(recorded_sig)
        ),
        "committed_backbone": staged,
        "integrity": [],  # checked before the rerun: an edited record never gets this far
        "train_log": log,
        "metric_differences": metric_diffs,
    }
    if mode == BIT_FOR_BIT:
        report["passed"] = log["identical"] and not metric_diffs
    else:
        report["statistical"] = statistical_check(
            cfg["run"], int(cfg["seed"]), committed.parent, regenerated.get("metrics", {})
        )
        report["passed"] = all(c["ok"] for c in report["statistical"])
    report["verdict"] = verdict(report)
    return report


def _json_safe(node: Any) -> Any:
    """The report with each non-finite number (an infinite z, a NaN difference) as its text, "inf",
    "-inf" or "nan": JSON has no such numbers, and segbench never writes a bare NaN."""
    if isinstance(node, float) and not math.isfinite(node):
        return str(node)
    if isinstance(node, dict):
        return {k: _json_safe(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_json_safe(v) for v in node]
    return node


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _varied_line(varied: dict[str, Any]) -> str:
    parts = []
    for name, state in varied.items():
        if state == "same":
            parts.append(f"same {name}")
        elif state == "unknown":
            parts.append(f"{name} unknown (not recorded)")
        elif name == "machine":
            parts.append(f"machine differs ({', '.join(state['differs'])})")
        else:
            a, b = state.get("committed"), state.get("rerun")
            shorten = (lambda v: str(v)[:12]) if name != "threads" else str
            parts.append(f"{name} differs ({shorten(a)} -> {shorten(b)})")
    return "; ".join(parts)


def _integrity_lines(issues: list[dict[str, Any]]) -> list[str]:
    lines = []
    for issue in issues:
        if issue["metric"] is None:
            lines.append(
                f"  record edited: metrics.json differs from the one {issue['table']} was assembled from  FAIL"
            )
        else:
            lines.append(
                f"  record edited: {issue['metric']} is {_fmt(issue['record_value'])} in metrics.json, "
                f"{_fmt(issue['table_value'])} in {issue['table']} (assembled from it)  FAIL"
            )
    return lines


def verdict(report: dict[str, Any]) -> str:
    """What a person reads: PASS/FAIL and the mode, what varied, then the headline metrics (statistical)
    or the differences (bit for bit), one line each; the JSON keeps every other metric."""
    machine = report["machine"]
    word = "PASS" if report["passed"] else "FAIL"
    if report["mode"] == BIT_FOR_BIT:
        why = f"machine signature {machine['current_hash']} matches the record"
    elif machine["recorded_hash"] == "unknown":
        why = "machine signature unknown (the record predates it), statistical fallback"
    else:
        fields = ", ".join(machine["differences"]) or "?"
        why = (
            f"machine signature {machine['recorded_hash']} != {machine['current_hash']} (differs in {fields})"
        )
    lines = [f"{report['run_id']}: {word} {report['mode']}; {why}"]
    if report.get("varied"):
        lines.append(f"  varied: {_varied_line(report['varied'])}")
    diffs = report["metric_differences"]
    if report["mode"] == STATISTICAL:
        checks = [c for c in report["statistical"] if c.get("applicable", True)]
        if not checks:
            lines.append("  no table reads this run: no headline metric to judge")
        for c in checks:
            if "z" not in c:
                lines.append(f"  {c['metric']}: {c.get('why', 'not comparable')}  FAIL")
                continue
            spread = f"{c['committed_mean']:.4g} ± {_fmt(c['committed_sd'] or 0.0)}"
            lines.append(
                f"  {c['metric']}: rerun {c['regenerated']:.4g}, committed {c['committed']:.4g} "
                f"(seeds {spread}, n={c['committed_seeds']}); z = {c['z']:+.2f} "
                f"(sd {c['sd_used']:.3g}{', floor' if c['sd_floored'] else ''})  {'ok' if c['ok'] else 'FAIL'}"
            )
        judged = {c["metric"] for c in checks}
        others = [d for d in diffs if d["metric"] not in judged and isinstance(d["abs_diff"], float)]
        if others:
            worst = max(others, key=lambda d: d["abs_diff"])
            lines.append(
                f"  {len(others)} other metric(s) differ, not judged (largest |Δ| {_fmt(worst['abs_diff'])} "
                f"in {worst['metric']}); all in the JSON report"
            )
    elif diffs:
        shown = "; ".join(
            f"{d['metric']} "
            + (
                "(array)"
                if isinstance(d["committed"], list)
                else f"{_fmt(d['committed'])} -> {_fmt(d['regenerated'])}"
            )
            for d in diffs[:3]
        )
        lines.append(f"  {len(diffs)} metric(s) differ: {shown}{' ...' if len(diffs) > 3 else ''}")
    else:
        lines.append("  every metric equal")
    log = report["train_log"]
    first = log["first_divergence"]
    if first:
        keys = ", ".join(
            f"{k} |Δ| {_fmt(v.get('abs_diff'))}" for k, v in list(first["differences"].items())[:4]
        )
        lines.append(
            f"  train log diverges first at line {first['line']} (iteration {first['iteration']}): {keys}"
        )
    elif log["committed_lines"]:
        lines.append(f"  train log identical ({log['committed_lines']} lines)")
    return "\n".join(lines)


# -- the audit ---------------------------------------------------------------------------------------------
def audit(
    scale: str,
    run_ids: list[str],
    *,
    data: Path,
    results: str | Path | None = None,
    work_dir: str | Path | None = None,
    out: str | Path | None = None,
    device: str | None = None,
    echo: Any = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Audit ``run_ids`` (see the module docstring); writes the JSON report to ``out`` (default
    ``<work dir>/audit.json``) and returns it. ``echo`` gets a line per stage and each verdict."""
    say = echo or (lambda line: None)
    committed_root = results_root(results).resolve()
    work = Path(work_dir).resolve() if work_dir else Path(tempfile.mkdtemp(prefix="segbench-audit-"))
    for what, path in (("--work-dir", work), ("--out", Path(out).resolve() if out else None)):
        if path is not None and (path == committed_root or committed_root in path.parents):
            raise InputError(
                f"{what} {path} is inside the committed results {committed_root}; the audit never "
                "writes there: choose a path outside it (default: a temporary folder)"
            )
    expected = [expected_seconds(record_run_dir(committed_root, scale, r)) for r in run_ids]
    known = [e for e in expected if e is not None]
    say(
        f"audit of {len(run_ids)} run(s) at scale {scale}: the committed trainings took "
        f"{sum(known):.0f} s{'' if len(known) == len(expected) else ' (some unrecorded)'} on their machine; "
        f"reruns go to {work}"
    )
    start = time.perf_counter()
    reports = []
    for index, run_id in enumerate(run_ids, 1):
        took = f"{expected[index - 1]:.0f} s" if expected[index - 1] is not None else "an unrecorded time"
        say(f"[{index}/{len(run_ids)}] {run_id}: its committed training took {took}")
        report = audit_instance(
            scale, run_id, work, data, results=results, device=device, echo=say, threads=threads
        )
        reports.append(report)
        say(report["verdict"])
    summary = {
        "scale": scale,
        "passed": all(r["passed"] for r in reports),
        "work_dir": str(work),
        "committed_results": str(committed_root),
        "wall_time_s": round(time.perf_counter() - start, 3),
        "rule": RULE,
        "z_limit": Z_LIMIT,
        "machine_signature": machine_signature(),
        "runs": reports,
    }
    path = Path(out) if out else work / "audit.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, _json_safe(summary))
    summary["report_path"] = str(path)
    return summary
