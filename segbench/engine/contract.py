"""The training-loop contract every gradient-trained family shares (docs/architecture.md, "Training contract").

A family supplies the model, the batches and the loss (:class:`TrainingFamily`); :func:`train` runs the
loop once for all families, each concern in its module:

- the schedule: :class:`Schedule` (:mod:`segbench.schedule`), one vocabulary for every family (``base_lr``,
  ``images_per_batch``; the U-Net registry spellings ``lr`` and ``batch_size`` are read as aliases, so the
  registry keys, and with them the config hashes, stay as they are);
- torchrun replicas and the device (:mod:`segbench.engine.distributed`);
- seeding and the RNG states (:mod:`segbench.engine.seeding`, :mod:`segbench.determinism`);
- the run identity, checkpoints, resume and the final model :data:`FINAL_MODEL`
  (:mod:`segbench.engine.checkpoint`);
- the log :data:`TRAIN_LOG`, the evaluation curve and the checkpoint of each step, as hooks
  (:mod:`segbench.engine.hooks`);
- here: SGD with momentum, the step learning rate with warm-up, optional mixed precision on CUDA, the stop
  on a non-finite loss (:func:`check_finite`).

Bit-identical training for a config and seed on the CPU: seed, then build the model, then resume, then the
batches (the loaders draw from private generators, never from the global RNG that dropout uses).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from segbench import determinism
from segbench.engine.checkpoint import (
    FINAL_MODEL,
    latest_checkpoint,
    load_final,
    resume,
    run_identity,
    save_final,
)
from segbench.engine.distributed import Replica, all_mean, init_replica, resolve_device, wait_for_main
from segbench.engine.hooks import CheckpointHook, HookBase, LogHook
from segbench.engine.seeding import seed_everything
from segbench.errors import RunError
from segbench.launch import check_replicas
from segbench.progress import progress_bar
from segbench.schedule import (  # noqa: F401 - re-exported: the contract's schedule
    SCHEDULE_ALIASES,
    Schedule,
    canonical_schedule,
    parse_schedule,
)
from segbench.trainlog import (  # noqa: F401 - re-exported: the log's names belong to the contract
    LEGACY_STEP_TIME,
    STEP_TIME,
    TRAIN_LOG,
    log_convergence,
    read_train_log,
)

log = logging.getLogger(__name__)


# -- what a family supplies ---------------------------------------------------------------------------
class TrainingFamily(Protocol):
    """One model family's part of training; made per run (``cfg``, ``data_root``, ``run_dir``).
    :class:`FamilyBase` gives the optional parts (hooks, summary, extras) their defaults."""

    distributed: bool  # may run as several torchrun replicas (DistributedDataParallel)
    schedule_defaults: dict[str, Any]  # values of omitted schedule keys
    channels_last_on_cpu: bool  # train in the channels-last layout on the CPU (oneDNN's preferred one)

    def schedule(self, *, replicas: int, gpus: int) -> Schedule: ...

    def build_model(self, schedule: Schedule) -> torch.nn.Module:
        """The model to train; called right after seeding (its initialisation draws from the RNG)."""

    def batches(
        self, schedule: Schedule, replica: Replica, device: torch.device, start: int
    ) -> Iterator[Any]:
        """Endless batches of this replica from iteration ``start`` on (after resume)."""

    def loss(
        self, net: torch.nn.Module, batch: Any, device: torch.device, amp: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss to minimise and its detached terms (``loss`` among them), logged per iteration."""

    def hooks(self, schedule: Schedule) -> list[HookBase]:
        """The family's own hooks, run after the log line and before the checkpoint of each step (Mask
        R-CNN: its evaluation curve, :class:`~segbench.engine.hooks.EvalCurveHook`)."""

    def summary(self) -> dict[str, Any]:
        """Family entries of the training summary (dataset size, tiles, ...)."""

    def final_extras(self) -> dict[str, Any]:
        """Entries stored in ``model_final.pt`` beside the weights (e.g. category ids)."""


class FamilyBase:
    """Defaults of a :class:`TrainingFamily`'s optional parts: no hooks, no summary entries, no extras."""

    distributed = False
    channels_last_on_cpu = False

    def hooks(self, schedule: Schedule) -> list[HookBase]:
        return []

    def summary(self) -> dict[str, Any]:
        return {}

    def final_extras(self) -> dict[str, Any]:
        return {}


@dataclass
class Loop:
    """What the hooks (:mod:`segbench.engine.hooks`) see of a training loop: its fixed parts and the step
    just taken."""

    family: Any
    cfg: dict[str, Any]
    run_dir: Path
    identity: dict[str, Any]
    replica: Replica
    device: torch.device
    schedule: Schedule
    model: torch.nn.Module  # the bare model (checkpoints, evaluation)
    net: torch.nn.Module  # what trains: the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    start: int  # the iteration resumed from (0: a fresh run)
    iteration: int = 0  # steps done, after the step (1-based)
    lr: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)  # the step's loss terms, mean over replicas
    step_time: float = 0.0
    data_time: float = 0.0


# -- the loop -----------------------------------------------------------------------------------------
@determinism.watched  # the ops run without a deterministic implementation: summary['determinism']
def train(
    family: TrainingFamily,
    cfg: dict[str, Any],
    run_dir: Path,
    *,
    device: str | None = None,
    gpus: int = 0,
    hooks: Sequence[HookBase] = (),
) -> dict[str, Any]:
    """Train (or resume) ``family``'s model of ``cfg`` into ``run_dir``; returns the summary, which
    ``model_final.pt`` also holds. A finished run (identity-checked final model) is a no-op.

    Each step runs the hooks in this order: the log line (:class:`~segbench.engine.hooks.LogHook`), the
    family's hooks, the caller's ``hooks``, the checkpoint (:class:`~segbench.engine.hooks.CheckpointHook`)."""
    run_dir = Path(run_dir)
    identity = run_identity(cfg)
    if (run_dir / FINAL_MODEL).exists():
        summary = load_final(run_dir, identity)["summary"]
        if summary is not None:
            return summary
    # --gpus N > 1 runs as N torchrun processes, never as one (segbench.launch); one line otherwise
    check_replicas(gpus, int(os.environ.get("WORLD_SIZE", "1")), distributed=family.distributed, cfg=cfg)
    replica = init_replica() if family.distributed else Replica()
    dev = resolve_device(device, replica.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    schedule = family.schedule(replicas=replica.world_size, gpus=gpus)
    every = [LogHook(), *family.hooks(schedule), *hooks, CheckpointHook()]  # a bad setting: error now
    if schedule.rescaled and replica.is_main:
        log.warning("%s: schedule rescaled: %s", cfg.get("run_id", cfg["run"]), schedule.rescaled["reason"])
    seed_everything(int(cfg.get("seed", 0)))
    model = family.build_model(schedule).to(dev)
    if dev.type == "cpu" and getattr(family, "channels_last_on_cpu", False):
        model = model.to(memory_format=torch.channels_last)
    net = model
    if replica.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=schedule.base_lr,
        momentum=schedule.momentum,
        weight_decay=schedule.weight_decay,
    )
    scaler = torch.amp.GradScaler(dev.type, enabled=schedule.amp and dev.type == "cuda")  # bf16 needs none
    run_dir.mkdir(parents=True, exist_ok=True)
    start = resume(run_dir, identity, model, optimizer, scaler, dev)
    loop = Loop(family, cfg, run_dir, identity, replica, dev, schedule, model, net, optimizer, scaler, start)
    for hook in every:
        hook.before_train(loop)
    batches = family.batches(schedule, replica, dev, start)
    net.train()
    # a context manager: the bar ends its line even when an error stops the loop (one-line errors)
    # tqdm on a terminal, one line per tenth in a log (segbench.progress; the train rule shows those lines)
    with progress_bar(
        schedule.iterations, initial=start, desc=cfg.get("run_id", cfg["run"]), disable=not replica.is_main
    ) as bar:
        for iteration in range(start, schedule.iterations):
            tic = time.perf_counter()
            batch = next(batches)
            loop.data_time = time.perf_counter() - tic
            loop.lr = schedule.lr(iteration)
            for group in optimizer.param_groups:
                group["lr"] = loop.lr
            loss, terms = family.loss(net, batch, dev, schedule.amp)
            loop.losses = all_mean(terms, replica)
            check_finite(torch.tensor(loop.losses["loss"]), iteration + 1, run_dir, loop.losses)
            sgd_step(loss, optimizer, scaler)
            loop.iteration, loop.step_time = iteration + 1, time.perf_counter() - tic
            for hook in every:
                hook.after_step(loop)
            bar.set_postfix(loss=f"{loop.losses['loss']:.3f}", lr=f"{loop.lr:.2g}")
            bar.update(1)
    for hook in every:
        hook.after_train(loop)
    summary = {
        "iterations": schedule.iterations,
        "resumed_from": start or None,
        "final_losses": loop.losses,
        "schedule": schedule.record(),
        "device": str(dev),
        "gpus_granted": gpus,
        "determinism": determinism.record(),
        "convergence": log_convergence(run_dir / TRAIN_LOG) if replica.is_main else None,
        **family.summary(),
    }
    if replica.is_main:
        save_final(run_dir, identity, model, summary, **family.final_extras())
    wait_for_main(replica)
    return summary


def check_finite(
    loss: torch.Tensor, iteration: int, run_dir: Path, parts: dict[str, float] | None = None
) -> None:
    """Stop the run on a NaN/inf loss, naming the iteration and keeping the last good checkpoint."""
    if not math.isfinite(float(loss)):
        detail = ", ".join(f"{k}={v:.4g}" for k, v in (parts or {}).items())
        last = latest_checkpoint(run_dir)
        keep = f"last good checkpoint kept: {last}" if last else "no checkpoint written yet"
        raise RunError(
            f"{run_dir}: non-finite loss at iteration {iteration} ({detail}); {keep}; "
            "lower the learning rate or check the data, then rerun to resume"
        )


def sgd_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Backward and update; the caller has checked that ``loss`` is finite on every replica."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
