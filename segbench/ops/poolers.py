"""Multi-level RoI pooling with any RoI layer: a drop-in for ``torchvision.ops.MultiScaleRoIAlign``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign

from segbench.errors import InputError
from segbench.ops.roi_layers import RoILayer, boxes_to_rois, roi_align


def infer_scale(feature: Tensor, image_size: Sequence[int]) -> float:
    """The feature map's scale relative to the image, rounded to a power of two: ``2 ** round(log2(
    h_feat / h_img))`` (from the height, as torchvision does)."""
    approx = float(feature.shape[-2]) / float(image_size[0])
    return 2.0 ** float(torch.tensor(approx).log2().round())  # float32 log2, as torchvision


def map_levels(
    boxes: Sequence[Tensor],
    k_min: int,
    k_max: int,
    canonical_scale: int = 224,
    canonical_level: int = 4,
    eps: float = 1e-6,
) -> Tensor:
    """FPN level index (0 = ``k_min``) of every box, FPN paper eq. 1:
    ``k = floor(k0 + log2(sqrt(w * h) / 224))`` clamped to ``[k_min, k_max]``.

    ``eps`` (as in torchvision) keeps a box of exactly ``224 * 2**j`` on level ``k0 + j`` despite
    rounding in ``log2``.
    """
    concat = torch.cat(list(boxes), dim=0)
    area = (concat[:, 2] - concat[:, 0]) * (concat[:, 3] - concat[:, 1])
    s = torch.sqrt(area)
    k = torch.floor(canonical_level + torch.log2(s / canonical_scale) + torch.tensor(eps, dtype=s.dtype))
    k = torch.clamp(k, min=k_min, max=k_max)
    return k.to(torch.int64) - k_min


class MultiScaleRoIPooler(MultiScaleRoIAlign):
    """Pool RoIs from one or several feature maps with any RoI layer (RoIPool, RoIWarp, RoIAlign).

    Same call and semantics as ``torchvision.ops.MultiScaleRoIAlign``: ``forward(x, boxes,
    image_shapes)`` with ``x`` a dict of feature maps (only ``featmap_names`` are used, in ``x``'s
    order, finest first), ``boxes`` one ``[L_i, 4]`` tensor of image-coordinate boxes per image and
    ``image_shapes`` the images' ``(height, width)`` before the backbone. Each map's scale is
    ``2 ** round(log2(h_feat / max h_img))``, its level ``-log2(scale)``; with several maps each box
    goes to level ``floor(k0 + log2(sqrt(wh) / canonical_scale))`` (FPN eq. 1) clamped to the
    available levels; with one map (C4 / C5 heads) every box is pooled from it. Returns
    ``[sum L_i, C, oh, ow]`` in the order of the concatenated boxes.

    ``roi_layer_fn`` is a layer with the uniform signature, e.g. ``make_roi_layer("roi_warp",
    "max")``; the default (None) is averaging RoIAlign, which makes this module equal to
    torchvision's. It subclasses ``MultiScaleRoIAlign`` only so that torchvision's detection models
    (``FasterRCNN``/``MaskRCNN``/``KeypointRCNN``, which type-check their poolers) accept it; unlike
    torchvision it recomputes the scales on every call instead of caching the first call's.
    """

    def __init__(
        self,
        featmap_names: list[str],
        output_size: int | Sequence[int],
        sampling_ratio: int,
        roi_layer_fn: RoILayer | None = None,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        if isinstance(featmap_names, str) or not featmap_names:
            raise InputError(f"featmap_names must be a non-empty list of names, got {featmap_names!r}")
        super().__init__(
            list(featmap_names),
            output_size,
            sampling_ratio,
            canonical_scale=canonical_scale,
            canonical_level=canonical_level,
        )
        self.roi_layer_fn: RoILayer = roi_align if roi_layer_fn is None else roi_layer_fn

    def setup_scales(
        self, features: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> tuple[list[float], int, int]:
        """Per-map scales and the FPN levels ``k_min, k_max`` of the finest and coarsest maps."""
        if not image_shapes:
            raise InputError("image_shapes is empty: give each image's (height, width)")
        max_size = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        scales = [infer_scale(f, max_size) for f in features]
        k_min = int(-torch.log2(torch.tensor(scales[0], dtype=torch.float32)).item())
        k_max = int(-torch.log2(torch.tensor(scales[-1], dtype=torch.float32)).item())
        return scales, k_min, k_max

    def forward(
        self,
        x: dict[str, Tensor],
        boxes: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> Tensor:
        features = [v for k, v in x.items() if k in self.featmap_names]
        if not features:
            raise InputError(
                f"none of the feature maps {list(self.featmap_names)} is in the input (it has {list(x)})"
            )
        device_type = features[0].device.type
        if torch.is_autocast_enabled(device_type):
            # under AMP the RoI layers run in float32, as torchvision's own autocast wrappers of roi_align and
            # roi_pool do on CUDA (and its CPU roi_pool kernel has no bfloat16); the result takes the features' type
            dtype = features[0].dtype
            with torch.autocast(device_type, enabled=False):
                pooled = self._pool([f.float() for f in features], [b.float() for b in boxes], image_shapes)
            return pooled.to(dtype)
        return self._pool(features, boxes, image_shapes)

    def _pool(
        self, features: list[Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        scales, k_min, k_max = self.setup_scales(features, image_shapes)
        self.scales = scales
        rois = boxes_to_rois(boxes)
        fn = self.roi_layer_fn
        if len(features) == 1:
            return fn(features[0], rois, self.output_size, scales[0], self.sampling_ratio)

        levels = map_levels(boxes, k_min, k_max, self.canonical_scale, self.canonical_level)
        first = features[0]
        result = first.new_zeros((rois.shape[0], first.shape[1]) + tuple(self.output_size))
        for level, (feature, scale) in enumerate(zip(features, scales, strict=True)):
            idx = torch.where(levels == level)[0]
            pooled = fn(feature, rois[idx], self.output_size, scale, self.sampling_ratio)
            result[idx] = pooled.to(result.dtype)
        return result

    def __repr__(self) -> str:
        name = getattr(self.roi_layer_fn, "__name__", None) or repr(self.roi_layer_fn)
        return (
            f"{self.__class__.__name__}(featmap_names={self.featmap_names}, output_size={self.output_size}, "
            f"sampling_ratio={self.sampling_ratio}, roi_layer_fn={name})"
        )
