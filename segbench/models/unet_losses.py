"""U-Net training losses (the ``loss`` model key), next to the model like Mask R-CNN's mask losses
(:mod:`segbench.models.maskrcnn.losses`); plugins add more through :func:`register_unet_loss`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from segbench.component_registry import Registry
from segbench.errors import InputError


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Equation 1: -sum_x w(x) log p_l(x)(x) of the pixel-wise softmax, divided by the pixel count."""
    return (F.cross_entropy(logits, target, reduction="none") * weights).mean()


UnetLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
UNET_LOSSES: Registry[UnetLoss] = Registry("U-Net loss", {"weighted_ce": weighted_cross_entropy})


def register_unet_loss(name: str, loss: UnetLoss, *, override: bool = False) -> None:
    """Add a training loss ``f(logits, target, weights) -> scalar`` under ``name`` (model key ``loss``); a
    name taken by another loss is an error unless ``override=True`` (:mod:`segbench.component_registry`)."""
    UNET_LOSSES.register(name, loss, override=override)


def unet_loss(model_cfg: dict[str, Any]) -> UnetLoss:
    name = model_cfg.get("loss", "weighted_ce")
    if name not in UNET_LOSSES:
        raise InputError(f"model key 'loss': unknown U-Net loss {name!r}; valid: {', '.join(UNET_LOSSES)}")
    return UNET_LOSSES[name]
