"""Mask R-CNN (He et al. 2017) and the variants of its Tables 2a-2e and 4-6, on torchvision's detection parts.

Public API:

- :func:`build_maskrcnn` (``cfg`` -> :class:`MaskRCNN`): any Mask R-CNN run of the registry at any scale;
  ``num_classes`` (background included) is ``cfg["model"]["num_classes"]``, else
  ``cfg["dataset"]["num_classes"]``, else 81 (COCO); keypoint runs predict ``num_keypoints`` (17).
- :func:`describe_heads`: the RoI heads layer by layer (Figure 4).
- :func:`register_mask_head` / :func:`register_mask_loss`: plugin hooks for new mask heads and losses.
"""

from segbench.models.maskrcnn.builder import MaskRCNN, build_maskrcnn
from segbench.models.maskrcnn.config import MaskRCNNSettings, settings_from_config
from segbench.models.maskrcnn.describe import describe_heads
from segbench.models.maskrcnn.losses import MASK_LOSSES, MaskLoss, register_mask_loss
from segbench.models.maskrcnn.mask_heads import MASK_HEADS, MaskHeadSpec, register_mask_head

__all__ = [
    "MASK_HEADS",
    "MASK_LOSSES",
    "MaskHeadSpec",
    "MaskLoss",
    "MaskRCNN",
    "MaskRCNNSettings",
    "build_maskrcnn",
    "describe_heads",
    "register_mask_head",
    "register_mask_loss",
    "settings_from_config",
]
