"""``dice_bce``: binary cross entropy on P(cell) plus 1 - soft Dice of P(cell) (Milletari et al., V-Net,
3DV 2016), with no weight map: the U-Net paper's eq. 1 weights are deliberately ignored.

segbench's U-Net engine calls ``f(logits [N, 2, h, h], target [N, h, h] int64 (1 = cell), weights [N, h, h])``
once per iteration and minimises the returned scalar (docs/adding_a_method.md, section 2.4). P(cell) is
softmax channel 1, i.e. sigmoid(logit 1 - logit 0), so the binary cross entropy on that difference is the
two-class cross entropy; the Dice term is what changes the optimisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: the weight of the soft Dice term against the cross entropy
DICE_WEIGHT = 1.0
#: Laplace smoothing of the soft Dice (an empty tile gives Dice 1, not 0 / 0)
SMOOTH = 1.0


def dice_bce(logits: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """BCE(P(cell), cell) + DICE_WEIGHT * (1 - soft Dice(P(cell), cell)), averaged over the batch's pixels."""
    del weights  # no weight map: the point of this method
    cell_logit = (logits[:, 1] - logits[:, 0]).float()
    truth = (target == 1).float()
    bce = F.binary_cross_entropy_with_logits(cell_logit, truth)
    cell = torch.sigmoid(cell_logit)
    dice = (2 * (cell * truth).sum() + SMOOTH) / (cell.sum() + truth.sum() + SMOOTH)
    return bce + DICE_WEIGHT * (1 - dice)


dice_bce.segbench_kind = "unet_loss"  # type: ignore[attr-defined]
