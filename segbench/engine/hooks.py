"""Training hooks, as detectron2's ``HookBase``: what :func:`segbench.engine.contract.train` does before,
at each step of and after the loop besides the step itself. Each step runs :class:`LogHook` first, the
family's and the caller's hooks, :class:`CheckpointHook` last (a run killed between a hook's work and the
checkpoint redoes that work on resume)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from segbench.engine.checkpoint import checkpoint_state, save_checkpoint
from segbench.engine.distributed import wait_for_main
from segbench.engine.eval_curve import add_eval_point, truncate_eval_curve
from segbench.io import append_jsonl, dumps, read_jsonl, write_text_atomic
from segbench.records import EVAL_CURVE
from segbench.trainlog import STEP_TIME, TRAIN_LOG

if TYPE_CHECKING:
    from segbench.engine.contract import Loop


class HookBase:
    """A training hook: :func:`~segbench.engine.contract.train` calls every hook at each point, in list
    order, on every replica (a hook that writes checks ``loop.replica.is_main``)."""

    def before_train(self, loop: Loop) -> None:
        """After resume, before the first step."""

    def after_step(self, loop: Loop) -> None:
        """After each optimizer step (``loop.iteration`` steps done)."""

    def after_train(self, loop: Loop) -> None:
        """After the last step, before the final model is saved."""


def truncate_log(path: Path, iteration: int) -> None:
    """Drop log lines past ``iteration`` (written after the checkpoint a run resumes from)."""
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if r.get("iteration", 0) <= iteration]
    write_text_atomic(path, "".join(dumps(r, sort_keys=True) + "\n" for r in kept))


class LogHook(HookBase):
    """The training log (:data:`~segbench.trainlog.TRAIN_LOG`): the schedule line of a fresh run, then one
    line per step; lines past the checkpoint a run resumes from are dropped first."""

    def before_train(self, loop: Loop) -> None:
        if loop.replica.is_main:
            truncate_log(loop.run_dir / TRAIN_LOG, loop.start)
            if loop.start == 0:
                append_jsonl(loop.run_dir / TRAIN_LOG, {"event": "schedule", **loop.schedule.record()})

    def after_step(self, loop: Loop) -> None:
        if loop.replica.is_main:
            line = {"iteration": loop.iteration, "lr": loop.lr, **loop.losses}
            append_jsonl(
                loop.run_dir / TRAIN_LOG, {**line, STEP_TIME: loop.step_time, "data_time": loop.data_time}
            )


class EvalCurveHook(HookBase):
    """The evaluation curve (:mod:`segbench.engine.eval_curve`): the family's ``evaluate_during_training``
    at ``iterations`` (:func:`~segbench.engine.eval_curve.eval_iterations`), by rank 0 while the other
    replicas wait; points past the checkpoint a run resumes from are dropped first."""

    def __init__(self, iterations: list[int]) -> None:
        self.iterations = set(iterations)

    def before_train(self, loop: Loop) -> None:
        if loop.replica.is_main:
            truncate_eval_curve(loop.run_dir / EVAL_CURVE, loop.start)

    def after_step(self, loop: Loop) -> None:
        if loop.iteration not in self.iterations:
            return
        if loop.replica.is_main:  # before the checkpoint: a run killed in between evaluates again
            add_eval_point(
                loop.family, loop.net, loop.model, loop.device, loop.run_dir / EVAL_CURVE, loop.iteration
            )
        wait_for_main(loop.replica)  # the other replicas wait for rank 0's evaluation (gloo, long timeout)


class CheckpointHook(HookBase):
    """A checkpoint every ``schedule.checkpoint_every`` steps and at the end
    (:func:`~segbench.engine.checkpoint.checkpoint_state`)."""

    def after_step(self, loop: Loop) -> None:
        done, schedule = loop.iteration, loop.schedule
        if loop.replica.is_main and (done % schedule.checkpoint_every == 0 or done == schedule.iterations):
            state = checkpoint_state(loop.identity, loop.model, loop.optimizer, loop.scaler, loop.device)
            save_checkpoint(loop.run_dir, done, state)
