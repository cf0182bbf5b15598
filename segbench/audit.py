"""``segbench audit``: retrain committed run instances from their recorded config and check the records.

Each audited instance (``results/<scale>/runs/<run>-seed<k>/``) is trained again from the config its
``config.json`` records, through :func:`segbench.engine.runner.train_run` and
:func:`~segbench.engine.runner.evaluate_run`, into a separate results root (a temporary folder, never the
committed one), then compared with the committed ``train_log.jsonl`` and ``metrics.json``:

- **bit for bit** where the machine signature the committed training recorded
  (``provenance.machine_signature_hash`` of ``train_done.json``, :func:`segbench.provenance.machine_signature`)
  equals this machine's: every logged value (losses, learning rates; not the step times) and every metric
  must be equal;
- **statistically** otherwise (and for records that predate the signature: "unknown"): each headline metric
  (the registry tables' columns the run feeds) must lie in the committed seed spread of that run
  (min..max over its committed seeds) widened by ``margin = max(SPREAD_FRACTION * (max - min),
  relative * max(|min|, |max|), ABSOLUTE)``. What differs is still reported: the first diverging log
  iteration and the size of the difference, the metrics that differ, and the signature fields that differ.

The audit runs with the thread count the committed training recorded (parallel reductions depend on it).
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.io import read_json, read_jsonl, write_json_atomic
from segbench.paths import child_path, results_root
from segbench.provenance import config_hash, machine_signature, signature_hash
from segbench.registry import split_run_id

TIMING_KEYS = frozenset({"time", "data_time", "seconds"})  # wall times: never equal across reruns
SPREAD_FRACTION = 0.5  # the seed spread is widened by half its width on each side ...
RELATIVE_TOLERANCE = 0.02  # ... or by 2 % of the larger magnitude ...
ABSOLUTE_TOLERANCE = 1e-9  # ... or by this, whichever is largest
BIT_FOR_BIT, STATISTICAL = "bit-for-bit", "statistical"


# -- which instances --------------------------------------------------------------------------------------
def committed_instances(scale: str, results: str | Path | None = None) -> list[str]:
    """Run ids (``<run>-seed<k>``) with committed ``config.json`` and ``metrics.json`` at ``scale``."""
    runs = child_path(results_root(results), scale, what="scale") / "runs"
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
            f"no committed run records under {results_root(results) / scale / 'runs'}; nothing to audit"
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


def seed_spread(runs_dir: Path, run: str, key: str) -> list[float]:
    """The committed values of metric ``key`` over every committed seed of ``run``."""
    values = []
    for path in sorted(runs_dir.glob(f"{run}-seed*/metrics.json")):
        if split_run_id(path.parent.name)[0] != run:
            continue
        value = flatten(read_json(path, "run metrics").get("metrics", {})).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values.append(float(value))
    return values


def statistical_check(run: str, runs_dir: Path, regenerated: dict[str, Any], relative: float) -> list[dict]:
    """Each headline metric against the committed seed spread of ``run``, widened by the margin."""
    flat = flatten(regenerated)
    keys = [k for k in headline_metrics(run) if k in flat] or sorted(
        k for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    checks = []
    for key in keys:
        spread, value = seed_spread(runs_dir, run, key), flat.get(key)
        if not spread or not isinstance(value, (int, float)):
            checks.append(
                {"metric": key, "regenerated": value, "committed_seeds": len(spread), "ok": value is None}
            )
            continue
        lo, hi = min(spread), max(spread)
        margin = max(SPREAD_FRACTION * (hi - lo), relative * max(abs(lo), abs(hi)), ABSOLUTE_TOLERANCE)
        ok = math.isfinite(value) and lo - margin <= value <= hi + margin
        checks.append(
            {
                "metric": key,
                "regenerated": value,
                "committed_min": lo,
                "committed_max": hi,
                "committed_seeds": len(spread),
                "margin": margin,
                "ok": ok,
            }
        )
    return checks


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


def audit_instance(
    scale: str,
    run_id: str,
    work: Path,
    data: Path,
    *,
    results: str | Path | None = None,
    device: str | None = None,
    relative: float = RELATIVE_TOLERANCE,
) -> dict[str, Any]:
    """Retrain and evaluate one committed instance under ``work`` and compare it with its records."""
    from segbench.engine.runner import evaluate_run, train_run

    runs_dir = child_path(results_root(results), scale, what="scale") / "runs"
    committed = child_path(runs_dir, run_id, what="run")
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

    target = child_path(work / scale / "runs", run_id, what="run")
    if target.resolve() == committed.resolve():
        raise InputError(
            f"{target}: the audit never writes into the committed results; choose another --work-dir"
        )
    start = time.perf_counter()
    with _threads((recorded_sig or {}).get("threads")):
        current_sig = machine_signature()
        train_run(cfg, target, data, device=device, force=target.exists())
        evaluate_run(cfg, target, data, device=device)
    wall = time.perf_counter() - start
    current_hash = signature_hash(current_sig)
    regenerated = read_json(target / "metrics.json", "run metrics")

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
            "differences": signature_differences(recorded_sig, current_sig),
        },
        "train_log": log,
        "metric_differences": metric_diffs,
    }
    if mode == BIT_FOR_BIT:
        report["passed"] = log["identical"] and not metric_diffs
    else:
        report["statistical"] = statistical_check(
            cfg["run"], runs_dir, regenerated.get("metrics", {}), relative
        )
        report["passed"] = all(c["ok"] for c in report["statistical"])
    report["verdict"] = verdict(report)
    return report


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def verdict(report: dict[str, Any]) -> str:
    """One line: PASS/FAIL, the mode and why, what differs (metrics, the first diverging log line)."""
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
    parts = [f"{report['run_id']}: {word} {report['mode']}; {why}"]
    log = report["train_log"]
    if report["mode"] == STATISTICAL:
        bad = [c for c in report["statistical"] if not c["ok"]]
        for c in bad:
            parts.append(
                f"{c['metric']} {_fmt(c['regenerated'])} outside committed "
                f"[{_fmt(c.get('committed_min'))}, {_fmt(c.get('committed_max'))}] "
                f"± {_fmt(c.get('margin'))} over {c['committed_seeds']} seed(s)"
            )
        if not bad:
            parts.append(f"{len(report['statistical'])} headline metric(s) within the committed seed spread")
    diffs = report["metric_differences"]
    if diffs:
        shown = "; ".join(
            f"{d['metric']} {_fmt(d['committed'])} -> {_fmt(d['regenerated'])}"
            + (f" (|Δ| {_fmt(d['abs_diff'])})" if d["abs_diff"] is not None else "")
            for d in diffs[:3]
        )
        parts.append(f"{len(diffs)} metric(s) differ: {shown}{' ...' if len(diffs) > 3 else ''}")
    else:
        parts.append("every metric equal")
    first = log["first_divergence"]
    if first:
        keys = ", ".join(f"{k} |Δ| {_fmt(v.get('abs_diff'))}" for k, v in first["differences"].items())
        parts.append(
            f"train log diverges first at line {first['line']} (iteration {first['iteration']}): {keys}"
        )
    elif log["committed_lines"]:
        parts.append(f"train log identical ({log['committed_lines']} lines)")
    return "; ".join(parts)


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
    relative: float = RELATIVE_TOLERANCE,
    echo: Any = None,
) -> dict[str, Any]:
    """Audit ``run_ids`` (see the module docstring); writes the JSON report to ``out`` (default
    ``<work dir>/audit.json``) and returns it. ``echo`` gets each verdict line as it is decided."""
    committed_root = results_root(results).resolve()
    work = Path(work_dir).resolve() if work_dir else Path(tempfile.mkdtemp(prefix="segbench-audit-"))
    if work == committed_root or committed_root in work.parents:
        raise InputError(
            f"--work-dir {work} is inside the committed results {committed_root}; the audit never "
            "writes there: choose a folder outside it (default: a temporary folder)"
        )
    start = time.perf_counter()
    reports = []
    for run_id in run_ids:
        report = audit_instance(scale, run_id, work, data, results=results, device=device, relative=relative)
        reports.append(report)
        if echo:
            echo(report["verdict"])
    summary = {
        "scale": scale,
        "passed": all(r["passed"] for r in reports),
        "work_dir": str(work),
        "committed_results": str(committed_root),
        "wall_time_s": round(time.perf_counter() - start, 3),
        "tolerance": {
            "spread_fraction": SPREAD_FRACTION,
            "relative": relative,
            "absolute": ABSOLUTE_TOLERANCE,
            "rule": "statistical: lo - margin <= value <= hi + margin over the committed seeds, margin = "
            "max(spread_fraction * (hi - lo), relative * max(|lo|, |hi|), absolute)",
        },
        "machine_signature": machine_signature(),
        "runs": reports,
    }
    path = Path(out) if out else work / "audit.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, summary)
    summary["report_path"] = str(path)
    return summary
