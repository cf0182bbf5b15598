"""Backbones of section 3 ("Network Architecture"): ResNet-50/101 and ResNeXt-101 32x8d as C4, C5 or FPN.

- C4: res2-res4 trunk (stride 16); res5 becomes the per-RoI box head (Figure 4 left), its first conv with
  stride 1 on the 7x7 RoI.
- C5: the full res2-res5 trunk (stride 32); RoI features come from res5 (Table 2d).
- FPN: P2-P6 from torchvision's :class:`BackboneWithFPN` (P6 = max-pool of P5, used by the RPN only).

The ResNets are torchvision's (``Bottleneck``, ``ResNet._make_layer``); :class:`ScaledResNet` only lets the
small CPU scales divide every width and choose the stage depths. ImageNet weights are tried when asked for
and the ResNet has the paper's widths and depths; otherwise (or offline) the weights stay random, and
:class:`BackboneInit` records which. A run (``segbench train`` / ``evaluate``) never gets that fallback: it
refuses to start without the ImageNet file (:func:`segbench.engine.imagenet.require_imagenet`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn
from torchvision.models import get_weight
from torchvision.models._api import WeightsEnum
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from segbench.errors import InputError
from segbench.models.backbone_specs import backbone_spec
from segbench.models.maskrcnn.config import MaskRCNNSettings


def imagenet_weights(backbone: str) -> WeightsEnum:
    """torchvision's ImageNet weights of ``backbone`` (the paper scale's initialisation)."""
    name = backbone_spec(backbone).imagenet_weights
    if name is None:
        raise InputError(f"backbone {backbone!r} has no ImageNet weights; set pretrained: false or name them")
    return get_weight(name)


def cardinality(backbone: str) -> tuple[int, int]:
    """(groups, width per group) of ``backbone``'s res2 bottleneck."""
    spec = backbone_spec(backbone)
    return spec.groups, spec.width_per_group


STAGE_WIDTHS = (256, 512, 1024, 2048)  # output channels of res2..res5 at full width
FPN_LEVELS = ("0", "1", "2", "3")  # P2..P5; the RPN also sees "pool" (P6)


class ScaledResNet(ResNet):
    """torchvision's bottleneck ResNet/ResNeXt with all widths divided by ``width_divisor``.

    ``ResNet.__init__`` hard-codes the stem and stage widths, so this constructor repeats its few lines
    with divided widths and reuses ``ResNet._make_layer`` and ``Bottleneck`` unchanged. With
    ``width_divisor=1`` and the paper's depths the state dict is key-for-key torchvision's (ImageNet weights
    load into it). ResNeXt keeps 8 channels per group and divides the group count instead.
    ``res5_stride=1`` builds the C4 head's res5, whose first conv runs on a 7x7 RoI with stride 1 (Figure 4).
    """

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        *,
        groups: int = 1,
        width_per_group: int = 64,
        width_divisor: int = 1,
        res5_stride: int = 2,
        norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d,
    ) -> None:
        nn.Module.__init__(self)
        scaled_groups = max(1, groups // width_divisor)
        self._norm_layer = norm_layer
        self.inplanes = 64 // width_divisor
        self.dilation = 1
        self.groups = scaled_groups
        self.base_width = width_per_group * groups // scaled_groups
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        planes = [p // width_divisor for p in (64, 128, 256, 512)]
        self.layer1 = self._make_layer(Bottleneck, planes[0], layers[0])
        self.layer2 = self._make_layer(Bottleneck, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(Bottleneck, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(Bottleneck, planes[3], layers[3], stride=res5_stride)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)


@dataclass(frozen=True)
class BackboneInit:
    """Which initialisation a backbone got (recorded as ``model.segbench_init``)."""

    backbone_weights: str  # "imagenet" | "synthetic-pretrained" (segbench.engine.pretrain) | "random"
    weights: str | None  # the torchvision weights enum used, if any
    reason: str | None  # why random when ImageNet weights were asked for
    norm: str  # "frozen_bn" | "bn" | "gn" | "none"
    frozen_stages: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Backbone:
    """A built backbone: the trunk the RPN and RoI heads share, and (C4 only) res5 for the box head."""

    trunk: nn.Module  # has ``out_channels``; returns an ordered dict of feature maps
    featmap_names: tuple[str, ...]  # the maps RoIs are pooled from
    res5: nn.Module | None
    init: BackboneInit


def imagenet_inapplicable(s: MaskRCNNSettings) -> str | None:
    """Why torchvision's ImageNet weights do not apply to ``s`` (``None``: they do, the paper's case)."""
    if not s.pretrained:
        return "pretrained: false"
    if s.width_divisor != 1 or s.blocks != backbone_spec(s.backbone).blocks:
        return "width_divisor/blocks differ from the ImageNet model"
    return None


def _imagenet_state_dict(s: MaskRCNNSettings) -> tuple[dict[str, Any] | None, str | None]:
    """Try torchvision's ImageNet weights; ``(None, reason)`` when they do not apply or cannot be had.
    (A training or evaluation run checks for the file first and refuses without it:
    :func:`segbench.engine.imagenet.require_imagenet`; this fallback serves direct model builds.)"""
    reason = imagenet_inapplicable(s)
    if reason is not None:
        return None, reason
    weights = imagenet_weights(s.backbone)
    try:
        return weights.get_state_dict(progress=False, check_hash=True), None
    except Exception as exc:  # offline, proxy, corrupt cache: fall back to random init, never crash
        return None, f"could not load {weights}: {type(exc).__name__}: {exc}"[:300]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (Wu & He, 2018), fewer where a width-divided stage has fewer channels."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


def no_norm(channels: int) -> nn.Identity:
    """No normalisation (the CPU scales' from-scratch choice; see experiments.yaml, scale mini)."""
    return nn.Identity()


# frozen_bn: ImageNet statistics as constants; bn: trainable BatchNorm (torchvision's from-scratch choice);
# gn: GroupNorm (trains from scratch at small batches, Wu & He 2018); none: identity.
NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    "frozen_bn": FrozenBatchNorm2d,
    "bn": nn.BatchNorm2d,
    "gn": group_norm,
    "none": no_norm,
}


def _resolve_norm(s: MaskRCNNSettings, imagenet: bool) -> str:
    """Frozen BN with ImageNet statistics; trainable BN from scratch (torchvision's rule), unless set."""
    if s.norm != "auto":
        return s.norm
    return "frozen_bn" if imagenet else "bn"


def _freeze_stem_and_res2(resnet: ResNet) -> tuple[str, ...]:
    """As torchvision and Detectron do with ImageNet weights: the stem and res2 stay fixed."""
    frozen = ("conv1", "bn1", "layer1")
    for name in frozen:
        getattr(resnet, name).requires_grad_(False)
    return frozen


def _pretrained_state_dict(s: MaskRCNNSettings) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(state dict, source, reason): the scale's miniature pretraining (``pretrained_weights``, a file of
    :mod:`segbench.engine.pretrain`) where set, else torchvision's ImageNet weights where they apply."""
    if s.pretrained and s.pretrained_weights:
        import torch

        state = torch.load(s.pretrained_weights, map_location="cpu", weights_only=True)
        return state["trunk"], "synthetic-pretrained", None
    state_dict, reason = _imagenet_state_dict(s)
    return state_dict, "imagenet" if state_dict is not None else "random", reason


def build_backbone(s: MaskRCNNSettings) -> Backbone:
    """The backbone of ``s.backbone``-``s.arch`` (e.g. ResNet-50-C4), widths divided by ``s.width_divisor``."""
    state_dict, source, reason = _pretrained_state_dict(s)
    norm = _resolve_norm(s, imagenet=source == "imagenet")
    groups, width_per_group = cardinality(s.backbone)
    resnet = ScaledResNet(
        s.blocks,
        groups=groups,
        width_per_group=width_per_group,
        width_divisor=s.width_divisor,
        res5_stride=1 if s.arch == "c4" else 2,
        norm_layer=NORM_LAYERS[norm],
    )
    frozen: tuple[str, ...] = ()
    if state_dict is not None:
        resnet.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith("fc.")})
        frozen = _freeze_stem_and_res2(resnet)
    weights = {
        "imagenet": str(imagenet_weights(s.backbone)) if source == "imagenet" else None,
        "synthetic-pretrained": s.pretrained_weights,
    }
    init = BackboneInit(
        backbone_weights=source,
        weights=weights.get(source),
        reason=reason if s.pretrained else None,
        norm=norm,
        frozen_stages=frozen,
    )
    widths = [w // s.width_divisor for w in STAGE_WIDTHS]
    if s.arch == "fpn":
        trunk = BackboneWithFPN(
            resnet,
            return_layers={f"layer{i + 1}": name for i, name in enumerate(FPN_LEVELS)},
            in_channels_list=widths,
            out_channels=s.fpn_channels,
            extra_blocks=LastLevelMaxPool(),
        )
        return Backbone(trunk, FPN_LEVELS, None, init)
    last_stage, name = ("layer3", "c4") if s.arch == "c4" else ("layer4", "c5")
    trunk = IntermediateLayerGetter(resnet, return_layers={last_stage: name})
    trunk.out_channels = widths[2] if s.arch == "c4" else widths[3]
    return Backbone(trunk, (name,), resnet.layer4 if s.arch == "c4" else None, init)
