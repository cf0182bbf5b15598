"""The optimisation schedule a run trains with, resolved in one place and without torch.

The registry gives each run a ``schedule`` block (``segbench.registry.resolve_run``: the scale's family
overlay, then its per-backbone, per-task and per-dataset overrides, then the run's own keys).
:func:`effective_schedule` turns that block into the :class:`Schedule` that actually runs: the family's
values of omitted keys (:attr:`segbench.families.FamilySpec.schedule_defaults`), the U-Net registry
spellings (``lr``, ``batch_size``) read as aliases, and the linear scaling rule for another device count
(Goyal et al. 2017). The training contract (:mod:`segbench.engine.contract`), the planner
(:mod:`segbench.plan`) and the run record (``config.json``'s ``schedule``) all read it from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from segbench.errors import InputError
from segbench.families import family_spec

SCHEDULE_ALIASES = {"lr": "base_lr", "batch_size": "images_per_batch"}  # registry spelling -> contract's


@dataclass(frozen=True)
class Schedule:
    """The optimisation schedule a run actually uses, after the granted-device rescaling."""

    iterations: int
    images_per_batch: int  # global, over all replicas
    images_per_replica: int
    base_lr: float
    lr_decay_at: list[int]
    lr_decay_factor: float
    warmup_iters: int
    warmup_factor: float
    momentum: float
    weight_decay: float
    checkpoint_every: int
    amp: bool
    replicas: int
    train_scales: list[int] | None = None
    rescaled: dict[str, Any] | None = None

    def lr(self, iteration: int) -> float:
        return self.base_lr * step_lr_factor(
            iteration, self.lr_decay_at, self.lr_decay_factor, self.warmup_iters, self.warmup_factor
        )

    def record(self) -> dict[str, Any]:
        """The schedule as a JSON object (``config.json``'s ``schedule``, the log's first line)."""
        return asdict(self)


def step_lr_factor(
    iteration: int,
    lr_decay_at: list[int],
    lr_decay_factor: float = 0.1,
    warmup_iters: int = 0,
    warmup_factor: float = 1.0 / 3,
) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based): linear warm-up from
    ``warmup_factor`` over ``warmup_iters``, then x ``lr_decay_factor`` at each step in ``lr_decay_at``
    (Mask R-CNN section 3.1: lr 0.02, decreased by 10 at 120k of 160k iterations)."""
    factor = lr_decay_factor ** sum(iteration >= step for step in lr_decay_at)
    if iteration < warmup_iters:
        alpha = iteration / max(1, warmup_iters)
        factor *= warmup_factor * (1 - alpha) + alpha
    return factor


def canonical_schedule(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` in the contract's vocabulary: ``lr`` -> ``base_lr``, ``batch_size`` -> ``images_per_batch``."""
    out = dict(raw)
    for alias, name in SCHEDULE_ALIASES.items():
        if alias in out:
            if name in out:
                raise InputError(f"schedule: both {alias!r} and {name!r} given; keep one")
            out[name] = out.pop(alias)
    return out


def parse_schedule(
    raw: dict[str, Any],
    defaults: dict[str, Any],
    *,
    replicas: int = 1,
    gpus: int = 0,
) -> Schedule:
    """The :class:`Schedule` of a ``schedule`` block for ``replicas`` data-parallel processes.

    ``defaults`` are the family's values of omitted keys (``checkpoint_every: None`` = once, at the end).
    With ``gpus`` set (the paper's device count: 16 images on 8 GPUs) a different replica count keeps the
    images per GPU and rescales linearly: the global batch and learning rate by ``k = replicas / gpus``,
    the iteration counts by ``1 / k`` (same number of epochs); the change is recorded in ``rescaled``.
    """
    values = {**defaults, **canonical_schedule(raw)}
    for key in ("iterations", "base_lr"):
        if key not in values:
            spelled = " or ".join([key, *(a for a, n in SCHEDULE_ALIASES.items() if n == key)])
            raise InputError(f"schedule: missing {spelled}")
    iterations, batch, lr = (
        int(values["iterations"]),
        int(values.get("images_per_batch", 1)),
        float(values["base_lr"]),
    )
    steps = [int(s) for s in values.get("lr_decay_at", [])]
    warmup = int(values.get("warmup_iters", 0))
    every = int(values.get("checkpoint_every") or iterations) or iterations
    rescaled = None
    paper_gpus = values.get("gpus")
    if paper_gpus:
        new_batch = batch // int(paper_gpus) * replicas
        if new_batch != batch:
            k = new_batch / batch
            rescaled = {
                "reason": f"{replicas} data-parallel replica(s) instead of the paper's {paper_gpus} "
                f"GPUs (granted gpus={gpus}); linear scaling rule",
                "paper": {
                    "images_per_batch": batch,
                    "base_lr": lr,
                    "iterations": iterations,
                    "lr_decay_at": steps,
                    "warmup_iters": warmup,
                },
                "factor": k,
            }
            iterations, steps = round(iterations / k), [round(s / k) for s in steps]
            warmup, every = round(warmup / k), max(1, round(every / k))
            batch, lr = new_batch, lr * k
    if batch % replicas:
        raise InputError(
            f"schedule: images_per_batch={batch} does not split over {replicas} replicas; "
            "change images_per_batch or the number of processes"
        )
    return Schedule(
        iterations=iterations,
        images_per_batch=batch,
        images_per_replica=batch // replicas,
        base_lr=lr,
        lr_decay_at=steps,
        lr_decay_factor=float(values.get("lr_decay_factor", 0.1)),
        warmup_iters=warmup,
        warmup_factor=float(values.get("warmup_factor", 1.0 / 3)),
        momentum=float(values["momentum"]),
        weight_decay=float(values["weight_decay"]),
        checkpoint_every=every,
        # automatic mixed precision: float16 autocast with a gradient scaler on CUDA, bfloat16 autocast on
        # the CPU (torch.autocast's CPU default; the rehearsal scale runs the paper's AMP path this way)
        amp=bool(values.get("amp", False)),
        replicas=replicas,
        # scale jitter (the keypoint runs, section 5): the shorter side drawn from these in training
        train_scales=[int(s) for s in values["train_scales"]] if values.get("train_scales") else None,
        rescaled=rescaled,
    )


def effective_schedule(cfg: dict[str, Any], *, replicas: int = 1, gpus: int = 0) -> Schedule | None:
    """The :class:`Schedule` a resolved run config trains with on ``replicas`` data-parallel processes
    (``gpus``: the device count granted, for the linear scaling rule); None for a family that does not
    train by gradient descent (the classical baselines). An unknown family fails with one line."""
    family = family_spec(cfg["family"])
    if family.schedule_defaults is None:
        return None
    return parse_schedule(cfg["schedule"], dict(family.schedule_defaults), replicas=replicas, gpus=gpus)
