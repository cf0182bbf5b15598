"""The per-RoI heads of Mask R-CNN (section 3): torchvision's ``RoIHeads`` with what the paper's variants need.

Kept from torchvision: proposal matching (positive at IoU >= 0.5, section 3.1), the 1:3 balanced sampler,
the box coder, ``fastrcnn_loss``, box post-processing (score threshold, per-class NMS, top detections)
and the keypoint loss and decoding. The mask targets (the RoI intersected with its ground-truth mask,
section 3.1) are torchvision's ``project_masks_on_boxes`` values computed by
:func:`~segbench.models.maskrcnn.mask_targets.mask_targets`, which never takes torchvision's
memory-hungry Python RoIAlign (deterministic mode on CUDA).

Added: a pluggable mask loss and its inference rule (:class:`MaskLoss`, Table 2b), class-agnostic masks
(section 4.2), and the C4 head whose mask branch shares res5 with the box branch (Figure 4 left): in
training the mask branch deconvolves the res5 features the box branch already computed for the positive
RoIs; at test time res5 runs again on the (at most 100) detected boxes, as the paper's inference does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    keypointrcnn_inference,
)

from segbench.errors import InputError
from segbench.models.maskrcnn.losses import MaskLoss, keypoint_loss
from segbench.models.maskrcnn.mask_targets import mask_targets

Targets = list[dict[str, Tensor]]


class MaskRCNNRoIHeads(RoIHeads):
    """``RoIHeads`` with a pluggable mask loss, class-agnostic masks and the C4 shared-res5 mask branch.

    ``mask_head is box_head`` marks the C4 head; then ``mask_roi_pool`` must be ``box_roi_pool``.
    """

    def __init__(
        self, *args: Any, mask_loss: MaskLoss | None = None, class_agnostic_masks: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.has_mask() and mask_loss is None:
            raise ValueError("a mask branch needs a mask_loss")
        self.mask_loss = mask_loss
        self.class_agnostic_masks = class_agnostic_masks

    @property
    def mask_shares_box_head(self) -> bool:
        """True for the C4 head: res5 is both the box head and the trunk of the mask branch."""
        return self.has_mask() and self.mask_head is self.box_head

    def check_targets(self, targets: Targets | None) -> None:
        super().check_targets(targets)
        for t in targets or []:
            if not t["boxes"].is_floating_point() or t["labels"].dtype != torch.int64:
                raise InputError("targets: boxes must be float and labels int64")
            if self.has_keypoint() and ("keypoints" not in t or t["keypoints"].dtype != torch.float32):
                raise InputError(
                    "targets: every target needs float32 'keypoints' [N, K, 3] for a keypoint run"
                )

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: Targets | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            return [], self._training_losses(features, proposals, image_shapes, targets)
        return self._detect(features, proposals, image_shapes), {}

    # --- training -------------------------------------------------------------------------------------
    def _training_losses(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: Targets | None,
    ) -> dict[str, Tensor]:
        proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        assert targets is not None  # select_training_samples checked them
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        loss_classifier, loss_box_reg = fastrcnn_loss(
            class_logits, box_regression, labels, regression_targets
        )
        losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}

        # The mask and keypoint losses are defined on positive RoIs only (section 3.1).
        positive = [lab > 0 for lab in labels]
        pos_boxes = [p[m] for p, m in zip(proposals, positive, strict=True)]
        pos_matched = [i[m] for i, m in zip(matched_idxs, positive, strict=True)]
        if self.has_mask():
            shared = box_features[torch.cat(positive)] if self.mask_shares_box_head else None
            mask_logits = self._mask_logits(features, pos_boxes, image_shapes, shared)
            losses["loss_mask"] = self._mask_loss(mask_logits, pos_boxes, pos_matched, targets)
        if self.has_keypoint():
            keypoint_logits = self._keypoint_logits(features, pos_boxes, image_shapes)
            gt_keypoints = [t["keypoints"] for t in targets]
            losses["loss_keypoint"] = keypoint_loss(keypoint_logits, pos_boxes, gt_keypoints, pos_matched)
        return losses

    def _mask_loss(
        self, mask_logits: Tensor, pos_boxes: list[Tensor], pos_matched: list[Tensor], targets: Targets
    ) -> Tensor:
        assert self.mask_loss is not None
        size = mask_logits.shape[-1]
        per_image = [
            mask_targets(t["masks"], boxes, idxs, size)
            for t, boxes, idxs in zip(targets, pos_boxes, pos_matched, strict=True)
        ]
        classes = torch.cat([t["labels"][idxs] for t, idxs in zip(targets, pos_matched, strict=True)])
        return self.mask_loss.loss(mask_logits, torch.cat(per_image), self._mask_classes(classes))

    # --- inference ------------------------------------------------------------------------------------
    def _detect(
        self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        boxes, scores, labels = self.postprocess_detections(
            class_logits, box_regression, proposals, image_shapes
        )
        results = [
            {"boxes": b, "labels": c, "scores": s} for b, c, s in zip(boxes, labels, scores, strict=True)
        ]
        # The mask and keypoint branches run on the final detections only (section 3.1, "Inference").
        if self.has_mask():
            assert self.mask_loss is not None
            mask_logits = self._mask_logits(features, boxes, image_shapes)
            probs = self.mask_loss.probabilities(mask_logits, self._mask_classes(torch.cat(labels)))
            for result, mask_probs in zip(results, probs.split([len(b) for b in boxes]), strict=True):
                result["masks"] = mask_probs
        if self.has_keypoint():
            keypoint_logits = self._keypoint_logits(features, boxes, image_shapes)
            keypoints, keypoint_scores = keypointrcnn_inference(keypoint_logits, boxes)
            for result, kps, kp_scores in zip(results, keypoints, keypoint_scores, strict=True):
                result["keypoints"], result["keypoints_scores"] = kps, kp_scores
        return results

    # --- branches -------------------------------------------------------------------------------------
    def _mask_classes(self, labels: Tensor) -> Tensor:
        """The mask class of each RoI: its object class, or 1 for class-agnostic masks."""
        return torch.ones_like(labels) if self.class_agnostic_masks else labels

    def _mask_logits(
        self,
        features: dict[str, Tensor],
        boxes: list[Tensor],
        image_shapes: list[tuple[int, int]],
        head_features: Tensor | None = None,
    ) -> Tensor:
        """Mask logits ``[N, C, m, m]``; ``head_features`` skips the head (C4 training reuses res5's output)."""
        assert (
            self.mask_roi_pool is not None and self.mask_head is not None and self.mask_predictor is not None
        )
        if head_features is None:
            head_features = self.mask_head(self.mask_roi_pool(features, boxes, image_shapes))
        return self.mask_predictor(head_features)

    def _keypoint_logits(
        self, features: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        assert self.keypoint_roi_pool is not None and self.keypoint_head is not None
        assert self.keypoint_predictor is not None
        logits = self.keypoint_predictor(
            self.keypoint_head(self.keypoint_roi_pool(features, boxes, image_shapes))
        )
        return logits.contiguous()  # the loss and decoding view it as [R * K, 56 * 56]: not channels-last
