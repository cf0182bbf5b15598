"""``build_maskrcnn(cfg)``: any Mask R-CNN run of the registry, at any scale, from torchvision's parts.

The model is torchvision's :class:`GeneralizedRCNN` (resize/normalise, backbone, RPN, RoI heads) with
this package's backbones, heads, RoI layers and mask losses plugged in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from segbench.errors import InputError
from segbench.models.maskrcnn.backbones import Backbone, build_backbone
from segbench.models.maskrcnn.box_heads import build_box_head
from segbench.models.maskrcnn.config import MaskRCNNSettings, settings_from_config
from segbench.models.maskrcnn.keypoint_heads import build_keypoint_head
from segbench.models.maskrcnn.losses import get_mask_loss
from segbench.models.maskrcnn.mask_heads import MaskHeadSpec, build_mask_head, resolve_mask_head
from segbench.models.maskrcnn.poolers import make_roi_pooler
from segbench.models.maskrcnn.roi_heads import MaskRCNNRoIHeads

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
NUM_PYRAMID_LEVELS = 5  # FPN's P2-P6, one anchor size each


class BinaryMaskTransform(GeneralizedRCNNTransform):
    """torchvision's transform, whose pasted mask probabilities are binarised at ``mask_threshold``.

    Section 3.1, "Inference": the m x m mask is resized to the box and binarised at 0.5; ``masks`` come
    out as ``uint8`` ``[N, 1, H, W]`` of 0 and 1.
    """

    def __init__(self, *args: Any, mask_threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mask_threshold = mask_threshold

    def postprocess(
        self,
        result: list[dict[str, Tensor]],
        image_shapes: list[tuple[int, int]],
        original_image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        result = super().postprocess(result, image_shapes, original_image_sizes)
        if not self.training:
            for detections in result:
                if "masks" in detections:
                    detections["masks"] = (detections["masks"] >= self.mask_threshold).to(torch.uint8)
        return result


class MaskRCNN(GeneralizedRCNN):
    """torchvision's ``GeneralizedRCNN`` that also records its settings and initialisation.

    ``segbench_init``: ``{"backbone_weights": "imagenet" | "random", "weights", "reason", "norm",
    "frozen_stages"}``; ``settings``: the resolved :class:`MaskRCNNSettings`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        rpn: RegionProposalNetwork,
        roi_heads: MaskRCNNRoIHeads,
        transform: GeneralizedRCNNTransform,
        settings: MaskRCNNSettings,
        segbench_init: dict[str, Any],
    ) -> None:
        super().__init__(backbone, rpn, roi_heads, transform)
        self.settings = settings
        self.segbench_init = segbench_init


def anchor_generator(s: MaskRCNNSettings) -> AnchorGenerator:
    """5 anchor scales x 3 aspect ratios (section 3.1): one size per FPN level, or all on C4/C5."""
    if s.arch == "fpn":
        if len(s.rpn_anchor_sizes) != NUM_PYRAMID_LEVELS:
            raise InputError(
                f"model key 'rpn_anchor_sizes': {list(s.rpn_anchor_sizes)} needs one size per "
                f"FPN level P2-P6 ({NUM_PYRAMID_LEVELS})"
            )
        sizes = tuple((size,) for size in s.rpn_anchor_sizes)
    else:
        sizes = (s.rpn_anchor_sizes,)
    return AnchorGenerator(sizes, (s.rpn_aspect_ratios,) * len(sizes))


def build_rpn(s: MaskRCNNSettings, in_channels: int) -> RegionProposalNetwork:
    """The RPN of section 3.1 on :func:`anchor_generator`'s anchors."""
    anchors = anchor_generator(s)
    return RegionProposalNetwork(
        anchors,
        RPNHead(in_channels, anchors.num_anchors_per_location()[0]),
        fg_iou_thresh=s.rpn_positive_iou,
        bg_iou_thresh=s.rpn_negative_iou,
        batch_size_per_image=s.rpn_batch_size,
        positive_fraction=s.rpn_positive_fraction,
        pre_nms_top_n={"training": s.rpn_pre_nms_train, "testing": s.rpn_pre_nms_test},
        post_nms_top_n={"training": s.rpn_post_nms_train, "testing": s.rpn_post_nms_test},
        nms_thresh=s.rpn_nms,
    )


def _mask_branch(
    s: MaskRCNNSettings, bb: Backbone, box_head: nn.Module, box_pool: nn.Module
) -> dict[str, Any]:
    mask_loss = get_mask_loss(s.mask_loss)
    spec = MaskHeadSpec(
        in_channels=bb.trunk.out_channels,
        roi_size=s.mask_roi_size,
        out_channels=mask_loss.channels(1 if s.class_agnostic else s.num_classes - 1),
        conv_dim=s.mask_head_dim,
        fc_dim=s.mask_fc_dim,
        res5=bb.res5,
    )
    mask_head, mask_predictor = build_mask_head(s.mask_head, s.arch, spec)
    if mask_head is box_head:  # C4: res5 is shared, so is its 7x7 RoI
        if s.mask_roi_size != s.box_roi_size:
            raise InputError(
                f"model key 'mask_size': {s.mask_size} must be 2 x box_roi_size "
                f"({2 * s.box_roi_size}) for the C4 res5 mask head"
            )
        mask_pool = box_pool
    else:
        mask_pool = make_roi_pooler(bb.featmap_names, s.mask_roi_size, s)
    return {
        "mask_roi_pool": mask_pool,
        "mask_head": mask_head,
        "mask_predictor": mask_predictor,
        "mask_loss": mask_loss,
        "class_agnostic_masks": s.class_agnostic,
    }


def build_roi_heads(s: MaskRCNNSettings, bb: Backbone) -> MaskRCNNRoIHeads:
    """Box head (Figure 4), plus the mask and keypoint branches the run's ``tasks`` ask for."""
    box_pool = make_roi_pooler(bb.featmap_names, s.box_roi_size, s)
    box_head, box_predictor = build_box_head(s, bb.trunk.out_channels, bb.res5)
    branches: dict[str, Any] = {}
    if s.has_mask:
        branches.update(_mask_branch(s, bb, box_head, box_pool))
    if s.has_keypoint:
        head, predictor = build_keypoint_head(bb.trunk.out_channels, s.keypoint_head_dim, s.num_keypoints)
        branches.update(
            keypoint_roi_pool=make_roi_pooler(bb.featmap_names, s.keypoint_roi_size, s),
            keypoint_head=head,
            keypoint_predictor=predictor,
        )
    return MaskRCNNRoIHeads(
        box_pool,
        box_head,
        box_predictor,
        fg_iou_thresh=s.roi_positive_iou,
        bg_iou_thresh=s.roi_positive_iou,
        batch_size_per_image=s.rois_per_image,
        positive_fraction=s.positive_fraction,
        bbox_reg_weights=None,
        score_thresh=s.box_score_thresh,
        nms_thresh=s.box_nms,
        detections_per_img=s.detections_per_image,
        **branches,
    )


def build_maskrcnn(cfg: Mapping[str, Any]) -> nn.Module:
    """The Mask R-CNN of a resolved run config (``segbench.registry.resolve_run``).

    Reads ``cfg["model"]`` (see :mod:`segbench.models.maskrcnn.config` for the keys, their defaults and
    ``num_classes``), ``cfg["input"]`` (``min_size``, ``max_size``) and ``cfg["dataset"]``. With
    ``implementation: torchvision`` the model is torchvision's own ``MaskRCNN`` around the same backbone
    (:mod:`segbench.models.maskrcnn.torchvision_ref`), the same-budget reference.
    """
    s = settings_from_config(cfg)
    if s.implementation == "torchvision":
        from segbench.models.maskrcnn.torchvision_ref import build_torchvision_maskrcnn

        return build_torchvision_maskrcnn(s)
    get_mask_loss(s.mask_loss)  # validate the names even where the run has no mask branch
    resolve_mask_head(s.mask_head, s.arch)
    bb = build_backbone(s)
    transform = BinaryMaskTransform(
        s.min_size, s.max_size, IMAGENET_MEAN, IMAGENET_STD, mask_threshold=s.mask_threshold
    )
    return MaskRCNN(
        bb.trunk,
        build_rpn(s, bb.trunk.out_channels),
        build_roi_heads(s, bb),
        transform,
        settings=s,
        segbench_init=bb.init.as_dict(),
    )
