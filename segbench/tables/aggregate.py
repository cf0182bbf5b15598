"""The numbers of a table: each run's metrics.json loaded and checked, per-seed values summarised.

Each row's reproduced value per column is the mean over the run's seeds (std with ddof=1 where there
are several); COCO metrics are stored as fractions and shown x 100 like the paper (their kind's scale,
:mod:`segbench.formatting`). Beside them: where each run was trained, whether its loss levelled off and, at
a cross-validation scale, the errors of all held-out slices pooled.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.formatting import metric_kind, percent
from segbench.io import read_json, sha256_file
from segbench.paths import record_run_dir
from segbench.provenance import config_hash
from segbench.registry import resolve_run, run_id, seeds_for_run

CONVERGED_COLUMN = "converged"  # beside the metric columns: did each row's training loss level off?
THINNED_PREFIX = "thinned."  # isbi.thinned.<score>: pooled from the folds' sums, not their counts


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
    return float(node) * metric_kind(key).scale


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
        text = verdict + ("" if change is None else f" ({percent(change, decimals=1, signed=True)})")
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
    ``None`` without that record (a run assembled from its metrics.json alone, or a classical baseline,
    which is not trained)."""
    path = run_dir / "train_done.json"
    if not path.is_file():
        return None
    prov = read_json(path, "train record").get("provenance") or {}
    return {key: prov.get(key) for key in ("git_commit", "device", "host")}


def run_source(path: Path, record: dict[str, Any], root: Path) -> dict[str, Any]:
    """Where a run instance's numbers came from (the keys of a table's ``runs``: config hash, metrics file
    and its sha256, commit, device, wall times)."""
    prov = record.get("provenance", {})
    return {
        "config_hash": record.get("config_hash"),
        "git_commit": prov.get("git_commit"),
        "device": prov.get("device"),
        "host": prov.get("host"),
        "trained_at": trained_at(path.parent),
        "train_wall_time_s": record.get("train_wall_time_s"),
        "eval_wall_time_s": prov.get("wall_time_s"),
        "metrics_sha256": sha256_file(path),
        "metrics_file": str(path.relative_to(root.parent)) if root.parent in path.parents else str(path),
    }


def load_run_metrics(run: str, scale: str, root: Path, registry: dict[str, Any]) -> list[tuple[Path, dict]]:
    """The ``(path, record)`` of each seed's metrics.json of ``run``; one line naming a missing or stale one
    (computed with another config than the registry now gives) and the command that remakes it."""
    out = []
    for seed in seeds_for_run(run, scale, registry):
        path = record_run_dir(root, scale, run_id(run, seed)) / "metrics.json"
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


def pooled_value(records: list[dict[str, Any]], key: str) -> float | None:
    """The ISBI error ``key`` (``isbi.<metric>``) of the folds' held-out slices pooled (their per-threshold
    counts summed, :mod:`segbench.metrics.isbi_pooled`), or the thinned score ``isbi.thinned.<score>``
    pooled from the folds' ``sums`` (:func:`segbench.metrics.isbi_thinned.pooled_thinned`); ``None`` for
    other metrics or where a record lacks them."""
    section, _, metric = key.partition(".")
    if section != "isbi" or not records:
        return None
    isbi = [rec["metrics"].get(section) or {} for rec in records]
    if metric.startswith(THINNED_PREFIX):
        from segbench.metrics.isbi_thinned import is_current, pooled_thinned

        if not all(is_current(block.get("thinned")) for block in isbi):
            return None
        sums = [block["thinned"]["sums"] for block in isbi]
        return float(pooled_thinned(sums)[metric.removeprefix(THINNED_PREFIX)])
    parts = [block.get("counts") for block in isbi]
    if any(p is None for p in parts):
        return None
    from segbench.metrics.isbi_pooled import pooled_isbi_metrics

    return float(pooled_isbi_metrics(parts)[metric])


def score_value(metrics: dict[str, Any], key: str, source: Path) -> float | None:
    """A table's score (``scores:``, e.g. ``isbi.thinned.v_rand``) of one run: :func:`metric_value`, but
    ``None`` where the run's metrics.json lacks the key (evaluated before the score existed, or by the
    earlier pooled version of the thinned scores: :func:`segbench.metrics.isbi_thinned.is_current`)."""
    if key.startswith(f"isbi.{THINNED_PREFIX}"):
        from segbench.metrics.isbi_thinned import is_current

        if not is_current((metrics.get("isbi") or {}).get("thinned")):
            return None
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return metric_value(metrics, key, source)
