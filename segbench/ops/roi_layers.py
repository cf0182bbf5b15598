"""RoI feature extractors compared in Mask R-CNN Table 2c: RoIPool, RoIWarp and RoIAlign, max or average.

Every layer has the signature ``f(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, ...)``
with ``input`` ``[N, C, H, W]``, ``rois`` ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in image
coordinates (or, as torchvision accepts, a list of ``[L_i, 4]`` boxes, one tensor per image),
``output_size`` an int or ``(h, w)``, and returns ``[K, C, oh, ow]``. ``spatial_scale`` maps image
coordinates to the feature map (1/16 for C4, 1/4..1/32 for FPN levels).

=============  ====================  ==========================  ===================================
layer          RoI on the feature    bins / samples              implementation
=============  ====================  ==========================  ===================================
``roi_pool``   ``round(x * scale)``  integer cells, max          ``torchvision.ops.roi_pool``
``roi_warp``   ``round(x * scale)``  bilinear points, max/avg    ours (avg: torchvision on the
                                                                 quantized boxes)
``roi_align``  ``x * scale``         bilinear points, avg/max    avg: torchvision's kernel;
                                                                 max: ours
=============  ====================  ==========================  ===================================

"torchvision's kernel" is ``torch.ops.torchvision.roi_align`` called directly
(:func:`segbench.ops.kernels.roi_align_kernel`): ``torchvision.ops.roi_align`` would swap it for a
memory-hungry Python version under deterministic mode on CUDA, which training turns on.

The bilinear layers share :func:`segbench.ops._sampling.sample_bins` (vectorized PyTorch, CPU and
CUDA, custom backward); see its module docstring for the exact sampling conventions, which are
torchvision's.

``make_roi_layer(name, aggregation, aligned)`` builds a layer from the :data:`ROI_LAYERS` registry,
which :func:`register_roi_layer` extends.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import torch
import torchvision
from torch import Tensor

from segbench.component_registry import Registry
from segbench.errors import InputError
from segbench.ops._sampling import sample_bins
from segbench.ops.kernels import roi_align_kernel

AGGREGATIONS = ("avg", "max")

RoILayer = Callable[..., Tensor]


# --------------------------------------------------------------------------------------------------
# input handling


def _pair(output_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(output_size, int):
        size = (output_size, output_size)
    else:
        size = tuple(int(s) for s in output_size)
        if len(size) == 1:
            size = (size[0], size[0])
    if len(size) != 2 or min(size) < 1:
        raise InputError(f"output_size must be a positive int or (h, w), got {output_size!r}")
    return size  # type: ignore[return-value]


def boxes_to_rois(boxes: Sequence[Tensor]) -> Tensor:
    """``[L_i, 4]`` boxes per image -> ``[sum L_i, 5]`` rows ``(image index, x1, y1, x2, y2)``."""
    if len(boxes) == 0:
        raise InputError("boxes is an empty list: give one [L, 4] tensor per image")
    concat = torch.cat(list(boxes), dim=0)
    ids = torch.cat([torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)], dim=0)
    return torch.cat([ids, concat], dim=1)


def _check(input: Tensor, rois: Tensor | Sequence[Tensor]) -> Tensor:
    if not isinstance(input, Tensor) or input.dim() != 4:
        shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
        raise InputError(f"input must be a [N, C, H, W] tensor, got {shape}")
    if not isinstance(rois, Tensor):
        for b in rois:
            if b.dim() != 2 or b.shape[1] != 4:
                raise InputError(f"boxes must be [L, 4] tensors per image, got {tuple(b.shape)}")
        rois = boxes_to_rois(rois)
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise InputError(f"rois must be [K, 5] (batch_index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    return rois


def _check_aggregation(aggregation: str) -> None:
    if aggregation not in AGGREGATIONS:
        raise InputError(f"unknown aggregation {aggregation!r}; valid choices: {', '.join(AGGREGATIONS)}")


def round_half_away(x: Tensor) -> Tensor:
    """C's ``round``: halves away from zero (``torch.round`` rounds halves to even), as torchvision's
    ``roi_pool`` kernel quantizes RoIs. Exact: ``x - trunc(x)`` is exact in floating point."""
    t = torch.trunc(x)
    frac = x - t
    return t + torch.where(frac.abs() >= 0.5, torch.sign(x), torch.zeros_like(x))


# --------------------------------------------------------------------------------------------------
# layers


def roi_pool(
    input: Tensor,
    rois: Tensor | Sequence[Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
) -> Tensor:
    """RoIPool (Fast R-CNN): max over integer cells of a quantized RoI. ``torchvision.ops.roi_pool``.

    The RoI is quantized to ``round(x * spatial_scale)`` (inclusive cell range, width
    ``max(x2q - x1q + 1, 1)``), each bin covers cells ``floor(i * bin)`` to ``ceil((i + 1) * bin)``
    of it (clipped to the map), the output is their max (an empty bin is 0). ``sampling_ratio`` is
    accepted for a uniform signature and ignored.
    """
    rois = _check(input, rois)
    return torchvision.ops.roi_pool(input, rois.to(input.dtype), _pair(output_size), float(spatial_scale))


def roi_warp(
    input: Tensor,
    rois: Tensor | Sequence[Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aggregation: str = "max",
) -> Tensor:
    """RoIWarp: RoIAlign's bilinear sampling on a RoI quantized as RoIPool quantizes it.

    Exact definition (per RoI, ``T`` the input dtype, ``round`` = C ``round``, halves away from 0):

    * ``x1q, y1q, x2q, y2q = round(x1 * s), round(y1 * s), round(x2 * s), round(y2 * s)`` with
      ``s = spatial_scale`` -- the quantization of RoIPool;
    * ``roi_w = max(x2q - x1q, 1)``, ``roi_h = max(y2q - y1q, 1)``, ``bin_w = roi_w / ow``;
    * ``gh x gw`` sampling points per bin with ``gh = gw = sampling_ratio`` if it is > 0, else
      ``gh = ceil(roi_h / oh)``, ``gw = ceil(roi_w / ow)``;
    * point ``(iy, ix)`` of bin ``(ph, pw)``: ``y = y1q + ph * bin_h + (iy + 0.5) * bin_h / gh``,
      ``x`` likewise, bilinearly interpolated with torchvision's RoIAlign conventions (0 outside
      ``[-1, H] x [-1, W]``, clamped to the edge inside);
    * ``aggregation="max"``: the bin's largest sample; ``"avg"``: their mean.

    In other words ``roi_warp(x, rois, ...) == roi_align(x, quantized rois, ..., spatial_scale=1,
    aligned=False)``: the quantization is the only difference from RoIAlign, which is the
    comparison of Mask R-CNN Table 2c. Dai et al. 2016 (MNC) introduced RoI warping with the same
    ``round(x * s)`` quantization and bilinear max sampling; their kernel places its points on a
    grid that includes the bin edges and treats ``[-0.5, H - 0.5]`` as inside -- here the points are
    RoIAlign's bin-interior ones so that the two layers differ by the quantization alone.
    The average is torchvision's RoIAlign kernel on the quantized boxes; the max is ours
    (:mod:`segbench.ops._sampling`).
    """
    rois = _check(input, rois)
    _check_aggregation(aggregation)
    size = _pair(output_size)
    rois = rois.detach().to(input.dtype)
    q = round_half_away(rois[:, 1:] * float(spatial_scale))
    if aggregation == "avg" and not _cpu_training(input):
        qrois = torch.cat([rois[:, :1], q], dim=1)
        return roi_align_kernel(input, qrois, size, 1.0, int(sampling_ratio), False)
    x1, y1, x2, y2 = q.unbind(1)
    roi_w = (x2 - x1).clamp(min=1.0)
    roi_h = (y2 - y1).clamp(min=1.0)
    batch = rois[:, 0].to(torch.int64)
    return sample_bins(input, batch, y1, x1, roi_h, roi_w, size, int(sampling_ratio), aggregation)


def roi_align(
    input: Tensor,
    rois: Tensor | Sequence[Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aggregation: str = "avg",
    aligned: bool = False,
) -> Tensor:
    """RoIAlign (Mask R-CNN section 3): no quantization, bilinear sampling points, average or max.

    ``x1 * spatial_scale - o`` with ``o = 0.5`` if ``aligned`` (Detectron2's half-pixel shift) else
    0; with ``aligned=False`` the RoI's width and height are at least 1. Bins and sampling points as
    in :func:`roi_warp` (``gh = ceil(roi_h / oh)`` when ``sampling_ratio <= 0``). ``"avg"`` is
    torchvision's kernel (:func:`~segbench.ops.kernels.roi_align_kernel`); ``"max"`` takes each bin's
    largest sample (ours, with the gradient going to the arg-max sample's four bilinear neighbours).
    """
    rois = _check(input, rois)
    _check_aggregation(aggregation)
    size = _pair(output_size)
    if aggregation == "avg" and not _cpu_training(input):
        return roi_align_kernel(
            input, rois.to(input.dtype), size, float(spatial_scale), int(sampling_ratio), bool(aligned)
        )
    rois = rois.detach().to(input.dtype)
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * float(spatial_scale) - offset
    y1 = rois[:, 2] * float(spatial_scale) - offset
    x2 = rois[:, 3] * float(spatial_scale) - offset
    y2 = rois[:, 4] * float(spatial_scale) - offset
    roi_w = x2 - x1
    roi_h = y2 - y1
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    batch = rois[:, 0].to(torch.int64)
    return sample_bins(input, batch, y1, x1, roi_h, roi_w, size, int(sampling_ratio), aggregation)


def _cpu_training(input: Tensor) -> bool:
    """Averaging RoIAlign on the CPU with a gradient to compute: our sampler gives torchvision's values
    with a vectorized backward (torchvision's CPU backward is a serial scatter loop; fwd + bwd 6-8x slower;
    `segbench bench roi_ops`). Inference and CUDA use torchvision's kernels."""
    return input.device.type == "cpu" and input.requires_grad and torch.is_grad_enabled()


# --------------------------------------------------------------------------------------------------
# registry


ROI_LAYERS: Registry[RoILayer] = Registry(
    "RoI layer",
    {
        "roi_pool": roi_pool,
        "roi_warp": roi_warp,
        "roi_align": roi_align,
    },
)


def register_roi_layer(name: str, fn: RoILayer, *, override: bool = False) -> None:
    """Add a RoI layer under ``name`` (the ``roi_layer`` model key); a name taken by another layer is an
    error unless ``override=True`` (:mod:`segbench.component_registry`).

    ``fn(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, ...)`` returns
    ``[K, C, oh, ow]``; if it takes an ``aggregation`` and/or an ``aligned`` keyword,
    :func:`make_roi_layer` passes them, otherwise it has a fixed aggregation and no half-pixel mode.
    """
    if not callable(fn):
        raise InputError(f"RoI layer {name!r} must be callable, got {type(fn).__name__}")
    ROI_LAYERS.register(name, fn, override=override)


def _accepts(fn: Callable, keyword: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature: pass nothing extra
        return False
    return keyword in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def make_roi_layer(roi_layer: str, aggregation: str = "avg", aligned: bool = False) -> RoILayer:
    """The RoI layer ``roi_layer`` with its aggregation (and half-pixel mode) bound.

    Returns a callable ``f(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1)``.
    ``aggregation`` is ``"avg"`` or ``"max"``; it does not apply to layers with a fixed aggregation
    (``roi_pool`` is max by definition, whatever is asked). ``aligned=True`` needs a layer with an
    ``aligned`` keyword (``roi_align``). Bad names raise :class:`~segbench.errors.InputError`.
    """
    fn = ROI_LAYERS.get(roi_layer) if isinstance(roi_layer, str) else None
    if fn is None:
        raise InputError(f"unknown RoI layer {roi_layer!r}; valid choices: {', '.join(sorted(ROI_LAYERS))}")
    _check_aggregation(aggregation)
    kwargs: dict[str, object] = {}
    if _accepts(fn, "aggregation"):
        kwargs["aggregation"] = aggregation
    if _accepts(fn, "aligned"):
        kwargs["aligned"] = bool(aligned)
    elif aligned:
        raise InputError(f"RoI layer {roi_layer!r} has no aligned (half-pixel) mode; use aligned=False")
    return functools.partial(fn, **kwargs) if kwargs else fn
