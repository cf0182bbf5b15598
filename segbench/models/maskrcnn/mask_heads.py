"""Mask branches of Figure 4 and Table 2e, and the registry that plugins extend (:func:`register_mask_head`).

A mask head factory takes a :class:`MaskHeadSpec` and returns ``(mask_head, mask_predictor)`` in
torchvision's split: the head maps pooled RoI features to a representation, the predictor maps it to
``[N, C, mask_size, mask_size]`` logits (C from the mask loss: K, K+1, or 1-2 class-agnostic).

- ``res5`` (C4's default, Figure 4 left): res5 *shared with the box head* on the 7x7 RoI, then
  deconv 2x2/2 to 14x14x256, ReLU, 1x1 conv to C (torchvision's ``MaskRCNNPredictor``).
- ``fcn`` (C5/FPN default, Figure 4 right): four 3x3 256-d convs with ReLU on the 14x14 RoI
  (torchvision's ``MaskRCNNHeads``), then deconv to 28x28 and the 1x1 conv.
- ``mlp2`` / ``mlp3`` (Table 2e): fc 1024 -> 1024 (-> 1024) with ReLU on the flattened 14x14 RoI, then an
  fc to C x 28^2 reshaped to a 28x28 map per channel.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from segbench.component_registry import Registry
from segbench.errors import InputError


@dataclass(frozen=True)
class MaskHeadSpec:
    """What a mask head factory gets to build ``(mask_head, mask_predictor)``."""

    in_channels: int  # channels of the pooled RoI features
    roi_size: int  # side of the pooled RoI (mask_size // 2)
    out_channels: int  # logit channels the mask loss needs
    conv_dim: int  # width of conv layers (mask_head_dim; 256 in the paper)
    fc_dim: int  # width of fc layers (mask_fc_dim; 1024 in the paper)
    res5: nn.Module | None = None  # C4: the box head's res5, which the mask branch shares

    @property
    def mask_size(self) -> int:
        return 2 * self.roi_size


MaskHeadFactory = Callable[[MaskHeadSpec], tuple[nn.Module, nn.Module]]


class MLPMaskHead(nn.Sequential):
    """Table 2e's MLP: flatten the RoI, then ``len(dims)`` fc layers with ReLU."""

    def __init__(self, in_features: int, dims: list[int]) -> None:
        layers: dict[str, nn.Module] = {"flatten": nn.Flatten(start_dim=1)}
        for i, dim in enumerate(dims, start=1):
            layers[f"mask_fc{i}"] = nn.Linear(in_features, dim)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            in_features = dim
        super().__init__(OrderedDict(layers))


class MLPMaskPredictor(nn.Module):
    """The MLP's last fc: ``in_features -> channels x mask_size^2``, reshaped to ``[N, C, m, m]``."""

    def __init__(self, in_features: int, channels: int, mask_size: int) -> None:
        super().__init__()
        self.mask_size = mask_size
        self.mask_fc_logits = nn.Linear(in_features, channels * mask_size**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask_fc_logits(x).unflatten(1, (-1, self.mask_size, self.mask_size))


def res5_mask_head(spec: MaskHeadSpec) -> tuple[nn.Module, nn.Module]:
    if spec.res5 is None:
        raise InputError("model key 'mask_head': 'res5' needs arch c4 (res5 is the C4 box head); use fcn")
    res5_channels = spec.res5[-1].conv3.out_channels
    return spec.res5, MaskRCNNPredictor(res5_channels, spec.conv_dim, spec.out_channels)


def fcn_mask_head(spec: MaskHeadSpec) -> tuple[nn.Module, nn.Module]:
    head = MaskRCNNHeads(spec.in_channels, [spec.conv_dim] * 4, dilation=1)
    return head, MaskRCNNPredictor(spec.conv_dim, spec.conv_dim, spec.out_channels)


def mlp_mask_head(num_fc: int) -> MaskHeadFactory:
    def factory(spec: MaskHeadSpec) -> tuple[nn.Module, nn.Module]:
        head = MLPMaskHead(spec.in_channels * spec.roi_size**2, [spec.fc_dim] * num_fc)
        return head, MLPMaskPredictor(spec.fc_dim, spec.out_channels, spec.mask_size)

    return factory


MASK_HEADS: Registry[MaskHeadFactory] = Registry(
    "mask_head",
    {
        "res5": res5_mask_head,
        "fcn": fcn_mask_head,
        "mlp2": mlp_mask_head(2),
        "mlp3": mlp_mask_head(3),
    },
    reserved=("default",),
)
DEFAULT_MASK_HEAD = {"c4": "res5", "c5": "fcn", "fpn": "fcn"}  # ``mask_head: default`` (Figure 4)


def register_mask_head(name: str, factory: MaskHeadFactory, *, override: bool = False) -> None:
    """Add a mask head under ``name`` (the ``mask_head`` model key); a plugin hook. A name taken by another
    head is an error unless ``override=True``; ``default`` is reserved (:mod:`segbench.component_registry`)."""
    MASK_HEADS.register(name, factory, override=override)


def resolve_mask_head(name: str, arch: str) -> MaskHeadFactory:
    """The factory registered as ``name``; ``default`` is Figure 4's head for ``arch``."""
    resolved = DEFAULT_MASK_HEAD[arch] if name == "default" else name
    if resolved not in MASK_HEADS:
        valid = ", ".join(["default", *MASK_HEADS])
        raise InputError(f"model key 'mask_head': unknown value {name!r}; valid: {valid}")
    return MASK_HEADS[resolved]


def build_mask_head(name: str, arch: str, spec: MaskHeadSpec) -> tuple[nn.Module, nn.Module]:
    """``(mask_head, mask_predictor)`` of the registered head ``name`` (``default``: Figure 4's)."""
    return resolve_mask_head(name, arch)(spec)
