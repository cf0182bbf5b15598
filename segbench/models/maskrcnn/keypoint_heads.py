"""Keypoint head of section 5 ("Mask R-CNN for Human Pose Estimation").

Eight 3x3 512-d convs with ReLU on the 14x14 RoI (torchvision's ``KeypointRCNNHeads``), then a 4x4/2
deconv to one 28x28 map per keypoint and 2x bilinear upsampling to 56x56 (``KeypointRCNNPredictor``).
Each keypoint is a one-hot 56x56 mask; the loss is the m^2-way softmax cross entropy per visible keypoint
(:data:`segbench.models.maskrcnn.losses.keypoint_loss`).
"""

from __future__ import annotations

from torch import nn
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor

KEYPOINT_CONVS = 8


def build_keypoint_head(in_channels: int, dim: int, num_keypoints: int) -> tuple[nn.Module, nn.Module]:
    """``(keypoint_head, keypoint_predictor)``: 8 x conv3x3 ``dim``, deconv, 2x bilinear (56x56 from 14x14)."""
    return KeypointRCNNHeads(in_channels, [dim] * KEYPOINT_CONVS), KeypointRCNNPredictor(dim, num_keypoints)
