"""Box heads of Figure 4: the C4 head is res5 (left), the C5/FPN head two 1024-d fc layers (right).

Both end in torchvision's :class:`FastRCNNPredictor` (K+1 class scores and class-specific box deltas).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

from segbench.models.maskrcnn.config import MaskRCNNSettings


class PooledBoxPredictor(FastRCNNPredictor):
    """Figure 4 left: average-pool res5's 7x7x2048 RoI features to 2048-d, then classify and regress.

    The pooling sits in the predictor, not the box head, so the box head's output is the 7x7 res5 map
    that the C4 mask branch deconvolves (section 3, "Network Architecture").
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return super().forward(x.mean(dim=(2, 3)))


def build_box_head(
    s: MaskRCNNSettings, in_channels: int, res5: nn.Module | None
) -> tuple[nn.Module, nn.Module]:
    """``(box_head, box_predictor)`` for the run's arch.

    ``res5`` is the C4 backbone's stride-1 fifth stage (None for C5/FPN).
    """
    if s.arch == "c4":
        assert res5 is not None, "the C4 box head needs the backbone's res5"
        res5_channels = res5[-1].conv3.out_channels
        return res5, PooledBoxPredictor(res5_channels, s.num_classes)
    head = TwoMLPHead(in_channels * s.box_roi_size**2, s.box_head_dim)
    return head, FastRCNNPredictor(s.box_head_dim, s.num_classes)
