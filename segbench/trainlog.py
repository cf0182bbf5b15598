"""The training log (``train_log.jsonl``) read without torch, and whether its loss levelled off.

A run *converged* (levelled off) when the mean total ``loss`` of the last 10 % of its logged iterations is
within 3 % of the mean of the 10 % before (:func:`loss_convergence`). Table assembly and the report use
this module, so neither imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segbench.io import read_jsonl

TRAIN_LOG = "train_log.jsonl"
STEP_TIME = "time"  # the log key of a step's wall time
LEGACY_STEP_TIME = ("seconds",)  # older U-Net logs

CONVERGENCE_WINDOW = 0.10  # the fraction of the logged iterations each mean covers
CONVERGENCE_TOLERANCE = 0.03  # |relative change| at most this: levelled off
CONVERGENCE_MIN_WINDOW = 2  # fewer iterations per window: too short to say
CONVERGENCE_RULE = (
    f"the mean loss of the last {CONVERGENCE_WINDOW:.0%} of the iterations is within "
    f"{CONVERGENCE_TOLERANCE:.0%} of the mean of the {CONVERGENCE_WINDOW:.0%} before (train_log.jsonl)"
)


def read_train_log(path: Path) -> list[dict[str, Any]]:
    """The log's records in the current schema (an older ``seconds`` step time is read as ``time``)."""
    records = []
    for record in read_jsonl(path):
        for old in LEGACY_STEP_TIME:
            if old in record and STEP_TIME not in record:
                record = {**record, STEP_TIME: record[old]}
                del record[old]
        records.append(record)
    return records


def loss_series(records: Sequence[dict[str, Any]]) -> list[float]:
    """The total loss per logged iteration, in iteration order (a repeated iteration: its last line)."""
    by_iteration = {
        int(r["iteration"]): float(r["loss"])
        for r in records
        if "iteration" in r and r.get("loss") is not None
    }
    return [by_iteration[i] for i in sorted(by_iteration)]


def loss_convergence(
    losses: Sequence[float],
    window: float = CONVERGENCE_WINDOW,
    tolerance: float = CONVERGENCE_TOLERANCE,
    min_window: int = CONVERGENCE_MIN_WINDOW,
) -> dict[str, Any]:
    """``{"converged", "relative_change", "window", "iterations"}`` of a loss series.

    ``relative_change`` = (mean of the last ``window`` fraction - mean of the one before) / |that mean|;
    ``converged`` is ``|relative_change| <= tolerance``, ``None`` (with ``relative_change`` None) where a
    window would hold fewer than ``min_window`` iterations or a loss is not finite."""
    n = len(losses)
    size = int(n * window)
    out: dict[str, Any] = {"converged": None, "relative_change": None, "window": size, "iterations": n}
    if size < max(1, min_window) or not all(math.isfinite(v) for v in losses[n - 2 * size :]):
        return out
    last = sum(losses[n - size :]) / size
    before = sum(losses[n - 2 * size : n - size]) / size
    if before == 0:  # no relative change to give (JSON has no infinity)
        out["converged"] = last == 0
        out["relative_change"] = 0.0 if last == 0 else None
        return out
    change = (last - before) / abs(before)
    out.update(converged=abs(change) <= tolerance, relative_change=change)
    return out


def log_convergence(path: Path) -> dict[str, Any]:
    """:func:`loss_convergence` of a run's ``train_log.jsonl`` (a missing log: not measurable)."""
    path = Path(path)
    return loss_convergence(loss_series(read_train_log(path)) if path.is_file() else [])
