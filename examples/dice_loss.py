"""A new loss for U-Net: the paper's weighted cross entropy (eq. 1) plus a soft Dice term on the cell
class (Milletari et al., V-Net, 3DV 2016), as a segbench plugin.

Use it:  segbench compare --method examples.dice_loss:dice_weighted_ce --table unet_table1 --seeds 3
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def dice_weighted_ce(logits: Tensor, target: Tensor, weights: Tensor, eps: float = 1.0) -> Tensor:
    """Weighted pixel-wise cross entropy + (1 - soft Dice of the foreground probability)."""
    ce = (F.cross_entropy(logits, target, reduction="none") * weights).mean()
    foreground = logits.softmax(dim=1)[:, 1]
    truth = (target == 1).to(foreground.dtype)
    dice = (2 * (foreground * truth).sum() + eps) / (foreground.sum() + truth.sum() + eps)
    return ce + (1 - dice)


dice_weighted_ce.segbench_kind = "unet_loss"  # type: ignore[attr-defined]
dice_weighted_ce.segbench_name = "dice_weighted_ce"  # type: ignore[attr-defined]
