"""Mask targets of Mask R-CNN's training (He et al. 2017, section 3.1, "Training").

"The mask target is the intersection between an RoI and its associated ground-truth mask": each positive
RoI's matched instance mask is cropped to the RoI and resampled to the head's ``m x m`` grid (28 x 28 for
FPN, 14 x 14 for C4), the values of torchvision's ``project_masks_on_boxes``: averaging RoIAlign
(``aligned=False``, adaptive sampling: ``ceil(roi / m)`` points per bin and axis) of the binary mask as
float. The loss then reads the target as the probability that a pixel is foreground.

Why not torchvision's function: it goes through ``torchvision.ops.roi_align``, which under deterministic
mode on CUDA (training turns it on) samples every pixel of the mask for every RoI in Python
(:mod:`segbench.ops.kernels`: gigabytes for one image). This one calls the kernel op directly and converts
only the instances some RoI is matched to, so its memory is ``used instances x H x W`` floats plus the
``K x m x m`` output. On the CPU it gives torchvision's targets bit for bit
(``tests/test_gpu_determinism.py``); the kernel's forward is deterministic on CUDA too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from segbench.errors import InputError
from segbench.ops.kernels import roi_align_kernel


def mask_targets(gt_masks: Tensor, boxes: Tensor, matched_idxs: Tensor, size: int) -> Tensor:
    """``[K, size, size]`` targets of ``K`` RoIs of one image.

    ``gt_masks`` ``[N, H, W]`` (binary, any dtype) are the image's instance masks, ``boxes`` ``[K, 4]``
    the RoIs ``(x1, y1, x2, y2)`` in image pixels (floating point), ``matched_idxs`` ``[K]`` the instance
    each RoI is matched to. Returns ``boxes``' dtype, values in ``[0, 1]``.
    """
    if gt_masks.dim() != 3 or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise InputError(
            f"mask targets need [N, H, W] masks and [K, 4] boxes, got {tuple(gt_masks.shape)} and "
            f"{tuple(boxes.shape)}"
        )
    if matched_idxs.shape != boxes.shape[:1]:
        raise InputError(
            f"matched_idxs {tuple(matched_idxs.shape)} must have one entry per box ({len(boxes)})"
        )
    used, slot = torch.unique(matched_idxs, return_inverse=True)
    masks = gt_masks[used][:, None].to(device=boxes.device, dtype=boxes.dtype)
    rois = torch.cat([slot.to(boxes)[:, None], boxes], dim=1)
    return roi_align_kernel(masks, rois, (size, size), 1.0, -1, False)[:, 0]
