"""The training-loop contract every gradient-trained family shares (docs/architecture.md, "Training contract").

A family supplies the model, the batches and the loss (:class:`TrainingFamily`); :func:`train` does the rest,
once for all families:

- the schedule: :class:`Schedule`, parsed from the resolved config's ``schedule`` block in one vocabulary
  (``base_lr``, ``images_per_batch``; the U-Net registry spellings ``lr`` and ``batch_size`` are read as
  aliases, so the registry keys, and with them the config hashes, stay as they are);
- the device (:func:`resolve_device`, one-line errors) and torchrun replicas (:func:`init_replica`);
- seeding, SGD with momentum, the step learning rate with warm-up, optional mixed precision on CUDA;
- checkpoints and resume (:func:`resume`): model, optimizer, grad scaler, iteration and RNG states under the
  run identity :func:`run_identity` (``run``, ``config_hash``, and ``dataset_hash`` once provenance records
  it); log lines past the checkpoint are dropped;
- the log schema (:data:`TRAIN_LOG`): one ``{"event": "schedule", ...}`` line at the start, then per
  iteration ``iteration``, ``lr``, ``loss`` and the other loss terms, ``time`` (the step's wall time, data
  included) and ``data_time``; :func:`read_train_log` also reads logs that named the step time ``seconds``;
- the final model (:data:`FINAL_MODEL`): ``{run, config_hash, model, summary, ...}``, identity-checked on
  load (:func:`load_final`).

Bit-identical training for a config and seed on the CPU: seed, then build the model, then resume, then the
batches (the loaders draw from private generators, never from the global RNG that dropout uses).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from segbench import determinism
from segbench.engine.common import (
    capture_rng_state,
    check_finite,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    save_torch,
    seed_everything,
)
from segbench.errors import InputError
from segbench.io import append_jsonl, dumps, read_json, read_jsonl, write_text_atomic
from segbench.launch import check_replicas
from segbench.paths import final_model
from segbench.progress import progress_bar
from segbench.provenance import config_hash
from segbench.records import EVAL_CURVE
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

FINAL_MODEL = "model_final.pt"
IDENTITY_KEYS = ("run", "config_hash", "dataset_hash")


# -- processes and devices ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Replica:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # a CPU (gloo) group for waiting on rank 0 (wait_for_main); None in a single process
    wait_group: Any = field(default=None, compare=False, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


DIST_TIMEOUT_ENV = "SEGBENCH_DIST_TIMEOUT_MIN"
DIST_TIMEOUT_MIN = 60.0  # > rank 0's longest lone work: one COCO val evaluation of the curve, minutes


def dist_timeout() -> timedelta:
    """How long a collective (and a wait for rank 0) may take before the job fails:
    ``$SEGBENCH_DIST_TIMEOUT_MIN`` minutes, default 60 (NCCL's own default is 10)."""
    text = os.environ.get(DIST_TIMEOUT_ENV, "").strip()
    try:
        minutes = float(text) if text else DIST_TIMEOUT_MIN
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise InputError(f"{DIST_TIMEOUT_ENV}={text!r}: expected minutes > 0, e.g. 60")
    return timedelta(minutes=minutes)


def init_replica() -> Replica:
    """Join the process group ``torchrun`` describes in WORLD_SIZE / RANK / LOCAL_RANK, if any, with an
    explicit timeout (:func:`dist_timeout`), plus a gloo group for :func:`wait_for_main`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Replica()
    timeout = dist_timeout()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timeout)
    wait_group = dist.new_group(backend="gloo", timeout=timeout)
    return Replica(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), wait_group)


def wait_for_main(replica: Replica) -> None:
    """The other replicas wait while rank 0 works alone (a point of the evaluation curve on the whole
    val split, the final save): on a CPU (gloo) barrier with the :func:`dist_timeout`, so that no NCCL
    collective is pending meanwhile (NCCL's watchdog would abort it). No-op in a single process."""
    if replica.world_size > 1:
        dist.barrier(group=replica.wait_group)


DEVICE_RE = re.compile(r"cpu|cuda(:\d+)?")


def resolve_device(value: Any = None, local_rank: int = 0) -> torch.device:
    """``torch.device`` of ``--device`` (default: cuda where available, else cpu; bare ``cuda`` is this
    replica's GPU). Anything else, or CUDA on a machine without it, is a one-line :class:`InputError`."""
    if value is None or str(value).strip() == "":
        value = "cuda" if torch.cuda.is_available() else "cpu"
    text = str(value).strip()
    if not DEVICE_RE.fullmatch(text):
        raise InputError(f"--device {text!r}: expected cpu, cuda or cuda:N")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {text}: CUDA is not available on this machine; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise InputError(
                f"--device {text}: this machine has {torch.cuda.device_count()} visible GPU(s); "
                "use cuda:0 .. cuda:N-1"
            )
    return device


# -- identity and the final model ---------------------------------------------------------------------
def run_identity(cfg: dict[str, Any], dataset_hash: str | None = None) -> dict[str, Any]:
    """What a checkpoint or final model must match to be used by this run: the run name and the config
    hash, plus the dataset hash where provenance records one (the slot is ``dataset_hash``)."""
    identity = {"run": cfg["run"], "config_hash": config_hash(cfg)}
    if dataset_hash is not None:
        identity["dataset_hash"] = dataset_hash
    return identity


def check_identity(state: dict[str, Any], identity: dict[str, Any], path: Path) -> None:
    """Refuse ``state`` (a checkpoint or final model) of another run or config; one-line errors.
    Checkpoints of the earlier U-Net engine carry ``run_id`` instead of ``run`` (their config hash decides)."""
    for key, value in identity.items():
        found = state.get(key)
        if key == "run" and "run" not in state and "run_id" in state:
            continue
        if found != value:
            raise InputError(
                f"{path}: written for {key}={found!r}, this run needs {value!r}; "
                "delete it or point the run at the right directory"
            )


def load_identified(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint (``weights_only``) after :func:`check_identity`."""
    state = load_checkpoint(path)
    check_identity(state, identity, path)
    return state


def save_final(
    run_dir: Path, identity: dict[str, Any], model: torch.nn.Module, summary: dict[str, Any], **extra: Any
) -> Path:
    """``model_final.pt``: identity, weights, the training summary and family ``extra``; atomic."""
    path = Path(run_dir) / FINAL_MODEL
    save_torch({**identity, "model": model.state_dict(), "summary": summary, **extra}, path)
    return path


def load_final(run_dir: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The run's final model (``model`` = weights, ``summary``, family extras), identity-checked.

    A bare state dict written by the earlier U-Net engine is accepted only where the run's
    ``train_done.json`` records this config hash; its ``summary`` is None. Weights fetched by ``dvc pull``
    (no ``model_final.pt``, a copy under ``<results>/<scale>/weights/``) are found there
    (:func:`segbench.paths.final_model`)."""
    path = final_model(run_dir)
    if not path.is_file():
        raise InputError(
            f"{path}: no trained weights; run `segbench train` for this run first, or `dvc pull` them"
        )
    state = load_checkpoint(path)
    if "model" not in state and "config_hash" not in state:
        check_legacy_final(run_dir, identity, path)
        return {**identity, "model": state, "summary": None}
    check_identity(state, identity, path)
    return state


def check_legacy_final(run_dir: Path, identity: dict[str, Any], path: Path) -> None:
    """Accept a final model written without identity (earlier engines) only where the run's
    ``train_done.json`` records this config hash; otherwise a one-line :class:`InputError`."""
    done = Path(run_dir) / "train_done.json"
    recorded = read_json(done, "train record").get("config_hash") if done.exists() else None
    if recorded != identity["config_hash"]:
        raise InputError(
            f"{path}: written without a run identity and no matching {done.name}; delete it and retrain"
        )


# -- the log ------------------------------------------------------------------------------------------
def truncate_log(path: Path, iteration: int) -> None:
    """Drop log lines past ``iteration`` (written after the checkpoint a run resumes from)."""
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if r.get("iteration", 0) <= iteration]
    write_text_atomic(path, "".join(dumps(r, sort_keys=True) + "\n" for r in kept))


# -- the evaluation curve -------------------------------------------------------------------------------
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


# -- resume -------------------------------------------------------------------------------------------
def resume(
    run_dir: Path,
    identity: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
) -> int:
    """Load the newest checkpoint of ``run_dir`` (weights, optimizer, scaler, RNG states) into the given
    objects; returns the iteration to continue from, 0 for a fresh run."""
    path = latest_checkpoint(run_dir)
    if path is None:
        return 0
    state = load_identified(path, identity)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    log.info("%s: resuming at iteration %d", path, int(state["iteration"]))
    return int(state["iteration"])


def checkpoint_state(
    identity: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
) -> dict[str, Any]:
    state = {
        **identity,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


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
        R-CNN: its evaluation curve, :class:`EvalCurveHook`)."""

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


# -- hooks ----------------------------------------------------------------------------------------------
@dataclass
class Loop:
    """What the hooks see of a training loop: its fixed parts and the step just taken."""

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


class HookBase:
    """A training hook, as detectron2's ``HookBase``: :func:`train` calls every hook at each point, in
    list order, on every replica (a hook that writes checks ``loop.replica.is_main``)."""

    def before_train(self, loop: Loop) -> None:
        """After resume, before the first step."""

    def after_step(self, loop: Loop) -> None:
        """After each optimizer step (``loop.iteration`` steps done)."""

    def after_train(self, loop: Loop) -> None:
        """After the last step, before the final model is saved."""


class LogHook(HookBase):
    """The training log (:data:`TRAIN_LOG`): the schedule line of a fresh run, then one line per step;
    lines past the checkpoint a run resumes from are dropped first."""

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
    """The evaluation curve (:data:`EVAL_CURVE`): the family's ``evaluate_during_training`` at
    ``iterations`` (:func:`eval_iterations`), by rank 0 while the other replicas wait; points past the
    checkpoint a run resumes from are dropped first."""

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
    """A checkpoint every ``schedule.checkpoint_every`` steps and at the end (:func:`checkpoint_state`)."""

    def after_step(self, loop: Loop) -> None:
        done, schedule = loop.iteration, loop.schedule
        if loop.replica.is_main and (done % schedule.checkpoint_every == 0 or done == schedule.iterations):
            state = checkpoint_state(loop.identity, loop.model, loop.optimizer, loop.scaler, loop.device)
            save_checkpoint(loop.run_dir, done, state)


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

    Each step runs the hooks in this order: the log line (:class:`LogHook`), the family's hooks, the
    caller's ``hooks``, the checkpoint (:class:`CheckpointHook`)."""
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


def sgd_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Backward and update; the caller has checked that ``loss`` is finite on every replica."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def all_mean(terms: dict[str, torch.Tensor], replica: Replica) -> dict[str, float]:
    """Loss terms averaged over replicas (so every rank sees the same NaN and stops together)."""
    names = sorted(terms)
    values = torch.stack([terms[n].float() for n in names])
    if replica.world_size > 1:
        dist.all_reduce(values)
        values /= replica.world_size
    return dict(zip(names, values.cpu().tolist(), strict=True))
