"""Model families by name: what the engine dispatch, the model builder, the schedule, the registry check
and the planner need of each, in one :class:`FamilySpec` per family (torch-free).

A family is a registry ``runs.<name>.family`` value. Its engine module provides ``train`` and ``evaluate``
(:mod:`segbench.engine.contract` for the gradient-trained ones), its builder ``cfg -> nn.Module``; both are
named as import paths and imported only when a run needs them, so ``segbench plan`` and the registry check
read this table without torch. A new family is a :func:`register_family` call beside its engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from segbench.component_registry import Registry


@dataclass(frozen=True)
class FamilySpec:
    """One model family."""

    name: str
    engine: str  # the module with train() and evaluate()
    builder: str  # "module:function", cfg -> the model
    # values of omitted schedule keys (segbench.schedule); None: not trained by gradient descent
    schedule_defaults: Mapping[str, Any] | None = field(default=None)
    distributed: bool = False  # may train as torchrun replicas, one per GPU (DDP)
    speed: str | None = None  # the `segbench bench` record that costs its training in `segbench plan`

    @property
    def trained(self) -> bool:
        return self.schedule_defaults is not None


FAMILIES: Registry[FamilySpec] = Registry("model family")


def register_family(spec: FamilySpec, *, override: bool = False) -> FamilySpec:
    """Make ``spec.name`` a valid ``family`` of registry runs (the rule of :mod:`segbench.component_registry`)."""
    if spec.schedule_defaults is not None:
        spec = FamilySpec(
            **{**spec.__dict__, "schedule_defaults": MappingProxyType(dict(spec.schedule_defaults))}
        )
    return FAMILIES.register(spec.name, spec, override=override)


def family_spec(name: str) -> FamilySpec:
    """The spec of family ``name``; an unknown one fails with one line naming the known ones."""
    return FAMILIES.lookup(name, "segbench.families.register_family")


register_family(
    FamilySpec(
        "maskrcnn",
        engine="segbench.engine.maskrcnn",
        builder="segbench.models.maskrcnn:build_maskrcnn",
        # Mask R-CNN section 3.1: SGD, momentum 0.9, weight decay 1e-4, lr / 10 at each step
        schedule_defaults={
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "checkpoint_every": 1000,
            "lr_decay_factor": 0.1,
            "warmup_iters": 0,
            "warmup_factor": 1.0 / 3,
            "eval_points": 4,  # the evaluation curve: val AP at 25/50/75/100 % of the iterations; 0 disables
        },
        distributed=True,
        speed="maskrcnn",
    )
)
register_family(
    FamilySpec(
        "unet",
        engine="segbench.engine.unet",
        builder="segbench.models.unet:build_unet",
        # U-Net section 3: SGD with a high momentum (0.99), one image per batch
        schedule_defaults={
            "momentum": 0.99,
            "weight_decay": 0.0,
            "checkpoint_every": None,
            "lr_decay_factor": 0.1,
            "warmup_iters": 0,
        },
        speed="unet",
    )
)
register_family(
    FamilySpec(
        "sliding_window",
        engine="segbench.engine.sliding_window",
        builder="segbench.models.sliding_window:build_sliding_window",
        # Ciresan et al. 2012 train with plain SGD; momentum as the U-Net's reference implementations
        schedule_defaults={
            "momentum": 0.9,
            "weight_decay": 0.0,
            "checkpoint_every": None,
            "lr_decay_factor": 0.1,
            "warmup_iters": 0,
            "images_per_batch": 64,
        },
    )
)
register_family(
    FamilySpec(
        "classical",
        engine="segbench.engine.classical",
        builder="segbench.models.classical:build_classical",
    )
)
