"""``implementation: torchvision``: torchvision's own ``MaskRCNN`` around this package's FPN backbone.

A same-budget reference (registry run ``r50_fpn_torchvision``, table ``reference_torchvision``): if our
Mask R-CNN (:func:`segbench.models.maskrcnn.builder.build_maskrcnn`) were broken, torchvision's would
score clearly higher on the same data, schedule and seeds. Shared with ours: the backbone object
(:func:`build_backbone`, ResNet + FPN, same init and norm), the input sizes and ImageNet mean/std, the
anchor generator, every RPN and RoI-sampling count and threshold, the box/mask RoI sizes and head widths,
the score threshold, NMS and detections per image (all from :class:`MaskRCNNSettings`), and the binarised
masks at inference (:class:`BinaryMaskTransform`). torchvision's own: ``RoIHeads`` (its
``maskrcnn_loss`` and ``maskrcnn_inference``), ``MultiScaleRoIAlign`` (aligned=False, the paper's
RoIAlign), ``TwoMLPHead`` / ``FastRCNNPredictor`` and ``MaskRCNNHeads`` / ``MaskRCNNPredictor`` (a mask
channel for the background class too, never trained or read).

Only what torchvision's ``MaskRCNN`` can express is accepted: FPN, RoIAlign (avg, aligned=false), the FCN
mask head, sigmoid masks, class-specific masks, tasks box [+ mask]; anything else is a one-line InputError.

On a GPU its forward pass runs with torch's deterministic mode off (:mod:`segbench.determinism`):
torchvision's RoIAlign would otherwise replace its kernel by a Python version that does not fit in memory
at COCO's mask sizes. The run's ``provenance.determinism`` records it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNN as TorchvisionMaskRCNN
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from segbench.determinism import torchvision_kernels
from segbench.errors import InputError
from segbench.models.maskrcnn.backbones import build_backbone
from segbench.models.maskrcnn.config import MaskRCNNSettings

MASK_HEAD_CONVS = 4  # Figure 4 right: four 3x3 convs before the deconv

# model key -> the values torchvision's MaskRCNN implements
SUPPORTED = {
    "arch": ("fpn",),
    "roi_layer": ("roi_align",),
    "roi_aggregation": ("avg",),
    "roi_aligned": (False,),
    "mask_head": ("default", "fcn"),
    "mask_loss": ("sigmoid",),
    "class_agnostic": (False,),
}


class ReferenceMaskRCNN(TorchvisionMaskRCNN):
    """torchvision's ``MaskRCNN`` that also records ``settings`` and ``segbench_init`` as ours does."""

    def __init__(self, *args: Any, settings: MaskRCNNSettings, segbench_init: dict[str, Any], **kw: Any):
        super().__init__(*args, **kw)
        self.settings = settings
        self.segbench_init = segbench_init

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None) -> Any:
        """torchvision's forward; on a GPU with deterministic mode on, with the flag off: torchvision's
        pooler and mask targets call ``torchvision.ops.roi_align``, whose deterministic fallback does not fit
        in memory (:func:`segbench.determinism.torchvision_kernels`, recorded in the run's provenance)."""
        device = images[0].device if len(images) else torch.device("cpu")
        with torchvision_kernels(device, "torchvision MaskRCNN forward"):
            return super().forward(images, targets)


def check_supported(s: MaskRCNNSettings) -> None:
    """One-line :class:`InputError` for a setting torchvision's ``MaskRCNN`` cannot build."""
    for key, allowed in SUPPORTED.items():
        value = getattr(s, key)
        if value not in allowed:
            raise InputError(
                f"model key {key!r}: {value!r} is not available with implementation: torchvision "
                f"(torchvision's MaskRCNN supports {', '.join(map(str, allowed))}); use implementation: segbench"
            )
    if s.has_keypoint:
        raise InputError(
            "model key 'tasks': keypoint is not available with implementation: torchvision "
            "(torchvision's MaskRCNN has no keypoint branch); use implementation: segbench"
        )


def sampling_kwargs(s: MaskRCNNSettings) -> dict[str, Any]:
    """The RPN and box-head keywords of torchvision's ``GeneralizedRCNN`` builders (``FasterRCNN``,
    ``MaskRCNN``, ``KeypointRCNN``) that carry the run's settings: proposals, NMS, IoU thresholds, sampling
    and detections. The reference model and ``segbench bench``'s torchvision rows both build with them."""
    return {
        "rpn_pre_nms_top_n_train": s.rpn_pre_nms_train,
        "rpn_pre_nms_top_n_test": s.rpn_pre_nms_test,
        "rpn_post_nms_top_n_train": s.rpn_post_nms_train,
        "rpn_post_nms_top_n_test": s.rpn_post_nms_test,
        "rpn_nms_thresh": s.rpn_nms,
        "rpn_fg_iou_thresh": s.rpn_positive_iou,
        "rpn_bg_iou_thresh": s.rpn_negative_iou,
        "rpn_batch_size_per_image": s.rpn_batch_size,
        "rpn_positive_fraction": s.rpn_positive_fraction,
        "box_score_thresh": s.box_score_thresh,
        "box_nms_thresh": s.box_nms,
        "box_detections_per_img": s.detections_per_image,
        "box_fg_iou_thresh": s.roi_positive_iou,
        "box_bg_iou_thresh": s.roi_positive_iou,
        "box_batch_size_per_image": s.rois_per_image,
        "box_positive_fraction": s.positive_fraction,
    }


def build_torchvision_maskrcnn(s: MaskRCNNSettings) -> ReferenceMaskRCNN:
    """torchvision's ``MaskRCNN`` with our backbone and every setting of ``s`` (see the module doc)."""
    from segbench.models.maskrcnn.builder import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        BinaryMaskTransform,
        anchor_generator,
    )

    check_supported(s)
    bb = build_backbone(s)
    channels = bb.trunk.out_channels
    featmaps = list(bb.featmap_names)
    mask_branch = {
        "mask_roi_pool": MultiScaleRoIAlign(
            featmaps, s.mask_roi_size, s.sampling_ratio, canonical_scale=s.roi_canonical_scale
        ),
        "mask_head": MaskRCNNHeads(channels, (s.mask_head_dim,) * MASK_HEAD_CONVS, 1),
        "mask_predictor": MaskRCNNPredictor(s.mask_head_dim, s.mask_head_dim, s.num_classes),
    }
    model = ReferenceMaskRCNN(
        bb.trunk,
        num_classes=None,  # set by the predictors
        min_size=s.min_size,
        max_size=s.max_size,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        rpn_anchor_generator=anchor_generator(s),
        box_roi_pool=MultiScaleRoIAlign(
            featmaps, s.box_roi_size, s.sampling_ratio, canonical_scale=s.roi_canonical_scale
        ),
        box_head=TwoMLPHead(channels * s.box_roi_size**2, s.box_head_dim),
        box_predictor=FastRCNNPredictor(s.box_head_dim, s.num_classes),
        **sampling_kwargs(s),
        settings=s,
        segbench_init=bb.init.as_dict(),
        **mask_branch,
    )
    if not s.has_mask:  # torchvision's MaskRCNN always adds a mask branch; a box-only run drops it
        model.roi_heads.mask_roi_pool = model.roi_heads.mask_head = model.roi_heads.mask_predictor = None
    # the same transform as ours: resize, normalise, and masks binarised at mask_threshold at inference
    model.transform = BinaryMaskTransform(
        s.min_size, s.max_size, IMAGENET_MEAN, IMAGENET_STD, mask_threshold=s.mask_threshold
    )
    return model
