"""A new RoI layer for Mask R-CNN: Precise RoI Pooling (Jiang et al., "Acquisition of Localization
Confidence for Accurate Object Detection", ECCV 2018), as a segbench plugin.

Where RoIAlign averages a few bilinear samples per bin, PrRoIPool integrates the bilinear interpolant of
the feature map over the whole bin and divides by the bin's area: no sampling_ratio, no quantization,
and a gradient with respect to every feature that the bin touches. With the hat kernel
h(t) = max(0, 1 - |t|), the interpolant is f(x, y) = sum_ij F[i, j] h(y - i) h(x - j), so

    integral over [y0, y1] x [x0, x1] of f = sum_ij F[i, j] * Hy_i * Hx_j,
    Hy_i = Hat(y1 - i) - Hat(y0 - i),   Hat = the antiderivative of h,

a product of two small matrices per RoI. Features outside the map count as 0.

Use it:  segbench compare --method examples.precise_roi_pool:prroi_pool --table table2c --seeds 3
"""

from __future__ import annotations

import torch
from torch import Tensor


def hat_antiderivative(t: Tensor) -> Tensor:
    """Integral of max(0, 1 - |s|) from -inf to t."""
    t = t.clamp(-1.0, 1.0)
    return torch.where(t < 0, 0.5 * (t + 1) ** 2, 1 - 0.5 * (1 - t) ** 2)


def bin_weights(start: Tensor, bin_size: Tensor, bins: int, length: int) -> Tensor:
    """``[K, bins, length]``: the integral of each grid point's hat over each bin along one axis."""
    edges = start[:, None] + bin_size[:, None] * torch.arange(
        bins + 1, device=start.device, dtype=start.dtype
    )
    grid = torch.arange(length, device=start.device, dtype=start.dtype)
    cumulative = hat_antiderivative(edges[:, :, None] - grid)  # [K, bins + 1, length]
    return cumulative[:, 1:] - cumulative[:, :-1]


def prroi_pool(
    input: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
) -> Tensor:
    """Precise RoI Pooling: the mean of the bilinear surface over each bin (sampling_ratio is unused)."""
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    n, c, h, w = input.shape
    out = input.new_zeros((rois.shape[0], c, oh, ow))
    if rois.numel() == 0:
        return out
    boxes = rois[:, 1:].to(input.dtype) * spatial_scale
    x0, y0 = boxes[:, 0], boxes[:, 1]
    bin_w = (boxes[:, 2] - x0).clamp(min=0) / ow
    bin_h = (boxes[:, 3] - y0).clamp(min=0) / oh
    wy = bin_weights(y0, bin_h, oh, h)  # [K, oh, H]
    wx = bin_weights(x0, bin_w, ow, w)  # [K, ow, W]
    area = (bin_h * bin_w)[:, None, None, None]
    batch = rois[:, 0].long()
    for image in range(n):  # one einsum per image, vectorized over its RoIs
        idx = torch.nonzero(batch == image).flatten()
        if idx.numel():
            integral = torch.einsum("kpi,cij,kqj->kcpq", wy[idx], input[image], wx[idx])
            out = out.index_copy(0, idx, integral / area[idx].clamp(min=torch.finfo(input.dtype).tiny))
    return torch.where(area > 0, out, torch.zeros_like(out))


prroi_pool.segbench_kind = "roi_layer"  # type: ignore[attr-defined]
prroi_pool.segbench_name = "prroi_pool"  # type: ignore[attr-defined]
