"""The evaluation curve while training (:data:`segbench.records.EVAL_CURVE`): at which iterations it
evaluates (:func:`eval_points`, :func:`eval_iterations`) and its file, one point appended per evaluation
(:func:`add_eval_point`) and cut back to the checkpoint a run resumes from (:func:`truncate_eval_curve`).
:class:`segbench.engine.hooks.EvalCurveHook` runs it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from segbench.engine.seeding import capture_rng_state, restore_rng_state
from segbench.errors import InputError
from segbench.io import dumps, read_json, write_text_atomic

if TYPE_CHECKING:
    from segbench.engine.contract import TrainingFamily


def eval_points(cfg: dict[str, Any], family: TrainingFamily) -> int:
    """The schedule's ``eval_points`` (the family's default where omitted, else 0)."""
    value = cfg.get("schedule", {}).get("eval_points", family.schedule_defaults.get("eval_points", 0))
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"schedule: eval_points={value!r}; expected a whole number >= 0 (0 disables)")
    return value


def eval_iterations(iterations: int, points: int) -> list[int]:
    """The iterations (1-based, after the step) at which the curve evaluates: ``points`` evenly spaced
    fractions of the schedule, the last one at its end (4 -> 25/50/75/100 %)."""
    if points <= 0 or iterations <= 0:
        return []
    return sorted({max(1, round(iterations * k / points)) for k in range(1, points + 1)})


def read_eval_curve(path: Path) -> list[dict[str, Any]]:
    """The curve's points (``[]`` without a file)."""
    return list(read_json(path, "evaluation curve")) if Path(path).exists() else []


def truncate_eval_curve(path: Path, iteration: int) -> None:
    """Drop curve points past ``iteration`` (evaluated after the checkpoint a run resumes from)."""
    points = read_eval_curve(path)
    kept = [p for p in points if int(p["iteration"]) <= iteration]
    if kept != points:
        write_text_atomic(path, dumps(kept, indent=1))


def add_eval_point(
    family: Any,
    net: torch.nn.Module,
    model: torch.nn.Module,
    device: torch.device,
    path: Path,
    iteration: int,
) -> dict[str, Any]:
    """Evaluate ``model`` through the family's hook and append the point to the curve (atomic). The RNG
    states are restored afterwards (training draws the same numbers with or without the curve) and the
    network is back in train mode."""
    rng = capture_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        metrics = family.evaluate_during_training(model, device)
    finally:
        restore_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)
        net.train()
    point = {"iteration": iteration, **metrics}
    points = [p for p in read_eval_curve(path) if int(p["iteration"]) != iteration]
    write_text_atomic(path, dumps(sorted([*points, point], key=lambda p: p["iteration"]), indent=1))
    return point
