"""torchvision's compiled averaging RoIAlign, called as the kernel op itself.

``torchvision.ops.roi_align`` does not always run its C++/CUDA kernel: when
``torch.are_deterministic_algorithms_enabled()`` and the input is on CUDA (or MPS / XPU), or when the
kernels are not loaded, it runs a pure-Python version compiled with ``torch.compile``. With adaptive
sampling (``sampling_ratio <= 0``, as mask targets use) that version samples every pixel of the input for
every RoI: 16 RoIs on a 100 x 134 mask took 2.6 s and 5.9 GB on the CPU (0.6 ms with the kernel), and COCO's
masks are about 800 x 1067. Training runs with deterministic mode on
(:func:`segbench.engine.seeding.seed_everything`), so everything segbench computes with averaging RoIAlign
(:func:`segbench.ops.roi_align`, :func:`segbench.ops.roi_warp`, the mask targets) calls
``torch.ops.torchvision.roi_align`` directly: the op ``torchvision.ops.roi_align`` calls when it does not
fall back, with the same values and the same autograd and autocast registrations.

What that costs: the CUDA kernel's backward accumulates gradients with ``atomicAdd``, so on CUDA the
gradient of averaging RoIAlign is not bit-reproducible (torch reports it as ``roi_align_backward_kernel``;
training records it in ``train_done.json``, ``provenance.determinism``). Its forward, and the CPU kernel
both ways, are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision  # noqa: F401 - loading torchvision registers torch.ops.torchvision
from torch import Tensor

from segbench.errors import InputError


def _roi_align_op() -> Callable[..., Tensor]:
    try:
        return torch.ops.torchvision.roi_align
    except (AttributeError, RuntimeError):
        raise InputError(
            f"torchvision {torchvision.__version__} has no compiled roi_align (torch.ops.torchvision) for "
            f"torch {torch.__version__}: install the torchvision wheel built for this torch"
        ) from None


def roi_align_kernel(
    input: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """``torchvision.ops.roi_align(input, rois, output_size, ...)`` without its Python fallback.

    ``input`` ``[N, C, H, W]``, ``rois`` ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` of the input's
    dtype and device, ``output_size`` ``(h, w)``; returns ``[K, C, h, w]``.
    """
    op = _roi_align_op()
    return op(
        input,
        rois,
        float(spatial_scale),
        int(output_size[0]),
        int(output_size[1]),
        int(sampling_ratio),
        bool(aligned),
    )
