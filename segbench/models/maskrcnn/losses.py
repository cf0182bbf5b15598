"""Mask losses of Table 2b and the registry that plugins extend (:func:`register_mask_loss`).

A :class:`MaskLoss` bundles the training loss with the matching test-time rule, because the two must
agree: a head trained with per-pixel softmax is read out with a softmax.

- ``sigmoid`` (the paper's choice, section 3 "Mask Representation"/"Multi-task loss"): K mask channels,
  one per class; per-pixel sigmoid and the average binary cross entropy on the channel of the RoI's
  ground-truth class only, so classes do not compete ("decouples mask and class prediction").
  Identical to torchvision's ``maskrcnn_loss``.
- ``softmax`` (Table 2b's "multinomial" alternative, as in FCN semantic segmentation): K+1 channels, channel
  0 background and channel k class k; a per-pixel (K+1)-way softmax with the multinomial cross entropy
  whose target is the RoI's ground-truth class where the (0.5-binarised) mask target is on and background
  elsewhere, averaged over all pixels. The classes compete at every pixel, which couples mask and class
  prediction. At test time the mask of the predicted class is that class's softmax probability.

Class-agnostic masks (section 4.2) use one mask class: K = 1 with every RoI of class 1.

Keypoints (section 5) keep torchvision's ``keypointrcnn_loss``: an m^2-way softmax cross entropy per
visible keypoint, re-exported here as :data:`keypoint_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.roi_heads import keypointrcnn_loss

from segbench.component_registry import Registry
from segbench.errors import InputError

keypoint_loss = keypointrcnn_loss


@dataclass(frozen=True)
class MaskLoss:
    """A mask loss with its inference rule.

    - ``loss(logits [N, C, m, m], targets [N, m, m] in [0, 1], classes [N] in 1..K) -> scalar``
    - ``probabilities(logits, classes) -> [N, 1, m, m]``: the foreground probability of each RoI's class
    - ``channels(K) -> C``: how many output channels the mask predictor needs for K mask classes
    """

    loss: Callable[[Tensor, Tensor, Tensor], Tensor]
    probabilities: Callable[[Tensor, Tensor], Tensor]
    channels: Callable[[int], int]


def _rows(logits: Tensor) -> Tensor:
    return torch.arange(logits.shape[0], device=logits.device)


def sigmoid_mask_loss(logits: Tensor, targets: Tensor, classes: Tensor) -> Tensor:
    """Average per-pixel binary cross entropy on each RoI's own class channel (``classes - 1``)."""
    if targets.numel() == 0:
        return logits.sum() * 0
    return F.binary_cross_entropy_with_logits(logits[_rows(logits), classes - 1], targets)


def sigmoid_mask_probabilities(logits: Tensor, classes: Tensor) -> Tensor:
    return logits[_rows(logits), classes - 1].sigmoid()[:, None]


def softmax_mask_loss(logits: Tensor, targets: Tensor, classes: Tensor) -> Tensor:
    """Average per-pixel (K+1)-way cross entropy: target ``class`` inside the mask, 0 (background) outside."""
    if targets.numel() == 0:
        return logits.sum() * 0
    pixel_classes = (targets >= 0.5).long() * classes[:, None, None]
    return F.cross_entropy(logits, pixel_classes)


def softmax_mask_probabilities(logits: Tensor, classes: Tensor) -> Tensor:
    return logits.softmax(dim=1)[_rows(logits), classes][:, None]


MASK_LOSSES: Registry[MaskLoss] = Registry(
    "mask_loss",
    {
        "sigmoid": MaskLoss(sigmoid_mask_loss, sigmoid_mask_probabilities, channels=lambda k: k),
        "softmax": MaskLoss(softmax_mask_loss, softmax_mask_probabilities, channels=lambda k: k + 1),
    },
)


def register_mask_loss(name: str, loss: MaskLoss, *, override: bool = False) -> None:
    """Add a mask loss under ``name`` (the ``mask_loss`` model key); a plugin hook. A name taken by another
    loss is an error unless ``override=True`` (:mod:`segbench.component_registry`)."""
    MASK_LOSSES.register(name, loss, override=override)


def get_mask_loss(name: str) -> MaskLoss:
    if name not in MASK_LOSSES:
        raise InputError(f"model key 'mask_loss': unknown value {name!r}; valid: {', '.join(MASK_LOSSES)}")
    return MASK_LOSSES[name]
