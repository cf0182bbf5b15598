"""Mask R-CNN backbones by name: what the model builder, the registry check and the planner need of each.

One :class:`BackboneSpec` per backbone, in :data:`BACKBONES` (a :class:`~segbench.component_registry.Registry`,
torch-free, so ``segbench plan`` and the registry check read it without building anything). A bottleneck
ResNet or ResNeXt needs nothing more: :func:`segbench.models.maskrcnn.backbones.build_backbone` builds any
spec's trunk (stage depths, groups x width per group, widths divided by the scale's ``width_divisor``).
Adding one is a :func:`register_backbone` call beside its builder plus the runs that use it in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from segbench.component_registry import Registry
from segbench.errors import InputError


@dataclass(frozen=True)
class BackboneSpec:
    """A bottleneck ResNet/ResNeXt trunk (He et al. 2016; Xie et al. 2017) as Mask R-CNN uses it."""

    name: str  # the registry's ``model.backbone`` value
    label: str  # for pages: "ResNet-50"
    blocks: tuple[int, int, int, int]  # the paper's stage depths, res2..res5
    groups: int = 1  # bottleneck groups x width per group in res2 (ResNeXt 32x8d: 32 x 8)
    width_per_group: int = 64
    # torchvision's ImageNet weights (``torchvision.models.get_weight`` name), the paper scale's initialisation
    imagenet_weights: str | None = None
    # training time relative to ResNet-50, all else equal (segbench.plan), and where the ratio comes from
    cost: float = 1.0
    cost_why: str = ""


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(spec: BackboneSpec, *, override: bool = False) -> BackboneSpec:
    """Make ``spec`` a valid ``model.backbone`` for Mask R-CNN runs (the registry rule of
    :mod:`segbench.component_registry`)."""
    if len(spec.blocks) != 4 or min(spec.blocks) < 1:
        raise InputError(f"backbone {spec.name!r}: blocks {list(spec.blocks)} must be 4 stage depths >= 1")
    return BACKBONES.register(spec.name, spec, override=override)


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; an unknown name fails with one line naming the known ones."""
    return BACKBONES.lookup(name, "segbench.models.backbone_specs.register_backbone")


# The paper's backbones (section 3; Tables 2a, 3). ResNet-101's ratio: the paper trains R101-FPN in 44 h and
# R50-FPN in 32 h. ResNeXt's: time = a + b * GFLOPs through those two points (R50 4.09, R101 7.80 GFLOPs,
# torchvision's ImageNet figures), b = 12 / 3.71 h per GFLOP, a = 32 - 4.09 b; X101-32x8d (16.41) -> 72 h.
register_backbone(
    BackboneSpec("resnet50", "ResNet-50", (3, 4, 6, 3), imagenet_weights="ResNet50_Weights.IMAGENET1K_V1")
)
register_backbone(
    BackboneSpec(
        "resnet101",
        "ResNet-101",
        (3, 4, 23, 3),
        imagenet_weights="ResNet101_Weights.IMAGENET1K_V1",
        cost=44 / 32,
        cost_why="ResNet-101 x1.375: the paper trains R101-FPN in 44 h, R50-FPN in 32 h",
    )
)
register_backbone(
    BackboneSpec(
        "resnext101_32x8d",
        "ResNeXt-101-32x8d",
        (3, 4, 23, 3),
        groups=32,
        width_per_group=8,
        imagenet_weights="ResNeXt101_32X8D_Weights.IMAGENET1K_V1",
        cost=round((32 + (16.41 - 4.09) * 12 / (7.80 - 4.09)) / 32, 2),
        cost_why="ResNeXt-101-32x8d x2.25: the paper's R50/R101 hours extrapolated linearly in "
        "backbone GFLOPs (4.09, 7.80, 16.41)",
    )
)
