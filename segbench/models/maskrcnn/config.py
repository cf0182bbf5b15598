"""Model settings of one Mask R-CNN run: the registry's keys, validated, with the paper's defaults.

``cfg["model"]`` (a run's keys overlaid by its scale's ``families.maskrcnn.model``) is read once into a
frozen :class:`MaskRCNNSettings`; every key the run leaves out takes the value of He et al. 2017, section
3.1 ("Implementation Details") and Figure 4. Keys that may differ per architecture (``rois_per_image``,
``rpn_post_nms_test``, ...) accept an int or a ``{c4: .., c5: .., fpn: ..}`` dict.

Number of classes: ``cfg["model"]["num_classes"]`` if set (the training engine sets it from the
annotation file's categories), else ``cfg["dataset"]["num_classes"]``, else 81 (COCO). As in torchvision
it *includes* the background class, so COCO's K = 80 object classes give ``num_classes = 81``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from segbench.errors import InputError
from segbench.models.backbone_specs import BACKBONES, backbone_spec
from segbench.ops import AGGREGATIONS, ROI_LAYERS

ARCHS = ("c4", "c5", "fpn")
TASKS = ("box", "mask", "keypoint")
NORMS = ("auto", "frozen_bn", "bn", "gn", "none")
# segbench: our Mask R-CNN (builder.py); torchvision: torchvision's own MaskRCNN around the same backbone,
# the same-budget reference of table reference_torchvision (torchvision_ref.py; FPN only)
IMPLEMENTATIONS = ("segbench", "torchvision")

COCO_NUM_CLASSES = 81  # 80 object classes + background
COCO_NUM_KEYPOINTS = 17

# The paper's values (section 3.1, Figure 4; FPN and RPN settings from Lin et al. 2017 as the paper cites).
PAPER_DEFAULTS: dict[str, Any] = {
    "pretrained": True,
    # A trunk state dict file from segbench.engine.pretrain (the CPU scales' miniature of ImageNet
    # pretraining); set by the training engine from the run's ``pretraining`` spec, never in the registry.
    "pretrained_weights": None,
    "norm": "auto",
    "width_divisor": 1,
    "fpn_channels": 256,
    "box_head_dim": 1024,
    "mask_head_dim": 256,
    "mask_fc_dim": 1024,
    "keypoint_head_dim": 512,
    "rpn_anchor_sizes": (32, 64, 128, 256, 512),
    "rpn_aspect_ratios": (0.5, 1.0, 2.0),
    "rpn_pre_nms_train": 2000,
    "rpn_post_nms_train": 2000,
    "rpn_pre_nms_test": 6000,
    "rpn_post_nms_test": {"c4": 300, "c5": 300, "fpn": 1000},
    "rpn_nms": 0.7,
    "rpn_batch_size": 256,
    "rpn_positive_fraction": 0.5,
    "rpn_positive_iou": 0.7,
    "rpn_negative_iou": 0.3,
    "rois_per_image": {"c4": 64, "c5": 64, "fpn": 512},
    "positive_fraction": 0.25,
    "roi_positive_iou": 0.5,
    "box_roi_size": 7,
    "mask_size": {"c4": 14, "c5": 28, "fpn": 28},
    "keypoint_roi_size": 14,
    "sampling_ratio": 2,
    # FPN's RoI-to-level rule (Lin et al. 2017, eq. 1): a w x h RoI goes to level
    # floor(4 + log2(sqrt(wh) / roi_canonical_scale)); 224, the ImageNet pre-training size
    "roi_canonical_scale": 224,
    "box_score_thresh": 0.05,
    "box_nms": 0.5,
    "detections_per_image": 100,
    "mask_threshold": 0.5,
    "num_keypoints": COCO_NUM_KEYPOINTS,
}


# The run keys of experiments.yaml (their defaults are those of the r50_fpn run) and the other known keys.
RUN_KEYS = (
    "backbone",
    "arch",
    "roi_layer",
    "roi_aggregation",
    "roi_aligned",
    "mask_head",
    "mask_loss",
    "class_agnostic",
    "tasks",
)
# "plugin" names a whole-model plugin (segbench.plugins) whose factory may build this model from the cfg
KNOWN_KEYS = frozenset((*RUN_KEYS, *PAPER_DEFAULTS, "blocks", "num_classes", "implementation", "plugin"))


def _int_at_least(key: str, value: Any, minimum: int, why: str = "") -> int:
    """``value``, an int >= ``minimum`` (not a bool); else a one-line :class:`InputError` naming the key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"model key {key!r}: {value!r} must be an int >= {minimum}{why}")
    return value


def choose(key: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; else a one-line :class:`InputError` naming all three."""
    if value not in choices:
        raise InputError(f"model key {key!r}: unknown value {value!r}; valid: {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class MaskRCNNSettings:
    """Every setting :func:`segbench.models.maskrcnn.build_maskrcnn` needs, resolved for one arch."""

    backbone: str
    arch: str
    implementation: str
    roi_layer: str
    roi_aggregation: str
    roi_aligned: bool
    mask_head: str
    mask_loss: str
    class_agnostic: bool
    tasks: tuple[str, ...]
    num_classes: int
    num_keypoints: int
    pretrained: bool
    pretrained_weights: str | None
    norm: str
    width_divisor: int
    blocks: tuple[int, int, int, int]
    fpn_channels: int
    box_head_dim: int
    mask_head_dim: int
    mask_fc_dim: int
    keypoint_head_dim: int
    rpn_anchor_sizes: tuple[int, ...]
    rpn_aspect_ratios: tuple[float, ...]
    rpn_pre_nms_train: int
    rpn_post_nms_train: int
    rpn_pre_nms_test: int
    rpn_post_nms_test: int
    rpn_nms: float
    rpn_batch_size: int
    rpn_positive_fraction: float
    rpn_positive_iou: float
    rpn_negative_iou: float
    rois_per_image: int
    positive_fraction: float
    roi_positive_iou: float
    box_roi_size: int
    mask_size: int
    keypoint_roi_size: int
    sampling_ratio: int
    roi_canonical_scale: int
    box_score_thresh: float
    box_nms: float
    detections_per_image: int
    mask_threshold: float
    min_size: int
    max_size: int

    @property
    def has_mask(self) -> bool:
        return "mask" in self.tasks

    @property
    def has_keypoint(self) -> bool:
        return "keypoint" in self.tasks

    @property
    def mask_roi_size(self) -> int:
        """Every mask head upsamples its RoI 2x (deconv, or the MLP's 2x larger output; Figure 4)."""
        return self.mask_size // 2


def _per_arch(key: str, value: Any, arch: str) -> Any:
    if isinstance(value, Mapping):
        if arch not in value:
            raise InputError(f"model key {key!r}: no value for arch {arch!r} in {dict(value)}; add one")
        return value[arch]
    return value


def _num_classes(cfg: Mapping[str, Any]) -> int:
    model, dataset = cfg.get("model", {}), cfg.get("dataset") or {}
    value = model.get("num_classes", dataset.get("num_classes", COCO_NUM_CLASSES))
    return _int_at_least("num_classes", value, 2, " (object classes + background)")


def _tasks(value: Any) -> tuple[str, ...]:
    tasks = tuple(value)
    for task in tasks:
        choose("tasks", task, TASKS)
    if "box" not in tasks:
        raise InputError(f"model key 'tasks': {list(tasks)} lacks 'box'; every Mask R-CNN run detects boxes")
    return tasks


def settings_from_config(cfg: Mapping[str, Any]) -> MaskRCNNSettings:
    """Validate a resolved run config and fill in the paper's defaults; unknown keys are errors (typos)."""
    unknown = sorted(set(cfg.get("model", {})) - KNOWN_KEYS)
    if unknown:
        raise InputError(f"model key {unknown[0]!r} is unknown; valid keys: {', '.join(sorted(KNOWN_KEYS))}")
    model = {**PAPER_DEFAULTS, **cfg.get("model", {})}
    backbone = choose("backbone", model.get("backbone", "resnet50"), tuple(BACKBONES))
    arch = choose("arch", model.get("arch", "fpn"), ARCHS)
    blocks = model.get("blocks", {})
    blocks = blocks.get(backbone, backbone_spec(backbone).blocks) if isinstance(blocks, Mapping) else blocks
    if len(blocks) != 4 or min(blocks) < 1:
        raise InputError(f"model key 'blocks': {list(blocks)} must give 4 stage depths >= 1 (res2..res5)")
    width_divisor = int(model["width_divisor"])
    if width_divisor < 1 or 64 % width_divisor:
        raise InputError(f"model key 'width_divisor': {width_divisor} must divide 64 (the stem width)")
    mask_size = int(_per_arch("mask_size", model["mask_size"], arch))
    if mask_size < 2 or mask_size % 2:
        raise InputError(f"model key 'mask_size': {mask_size} must be an even int >= 2")
    per_arch_int = {
        key: int(_per_arch(key, model[key], arch))
        for key in (
            "rpn_pre_nms_train",
            "rpn_post_nms_train",
            "rpn_pre_nms_test",
            "rpn_post_nms_test",
            "rois_per_image",
            "detections_per_image",
        )
    }
    return MaskRCNNSettings(
        backbone=backbone,
        arch=arch,
        implementation=choose("implementation", model.get("implementation", "segbench"), IMPLEMENTATIONS),
        roi_layer=choose("roi_layer", model.get("roi_layer", "roi_align"), tuple(ROI_LAYERS)),
        roi_aggregation=choose("roi_aggregation", model.get("roi_aggregation", "avg"), tuple(AGGREGATIONS)),
        roi_aligned=bool(model.get("roi_aligned", False)),
        mask_head=str(model.get("mask_head", "default")),
        mask_loss=str(model.get("mask_loss", "sigmoid")),
        class_agnostic=bool(model.get("class_agnostic", False)),
        tasks=_tasks(model.get("tasks", ("box", "mask"))),
        num_classes=_num_classes(cfg),
        num_keypoints=int(model["num_keypoints"]),
        pretrained=bool(model["pretrained"]),
        pretrained_weights=None if model["pretrained_weights"] is None else str(model["pretrained_weights"]),
        norm=choose("norm", model["norm"], NORMS),
        width_divisor=width_divisor,
        blocks=tuple(int(b) for b in blocks),
        fpn_channels=int(model["fpn_channels"]),
        box_head_dim=int(model["box_head_dim"]),
        mask_head_dim=int(model["mask_head_dim"]),
        mask_fc_dim=int(model["mask_fc_dim"]),
        keypoint_head_dim=int(model["keypoint_head_dim"]),
        rpn_anchor_sizes=tuple(int(s) for s in model["rpn_anchor_sizes"]),
        rpn_aspect_ratios=tuple(float(r) for r in model["rpn_aspect_ratios"]),
        rpn_nms=float(model["rpn_nms"]),
        rpn_batch_size=int(model["rpn_batch_size"]),
        rpn_positive_fraction=float(model["rpn_positive_fraction"]),
        rpn_positive_iou=float(model["rpn_positive_iou"]),
        rpn_negative_iou=float(model["rpn_negative_iou"]),
        positive_fraction=float(model["positive_fraction"]),
        roi_positive_iou=float(model["roi_positive_iou"]),
        box_roi_size=int(model["box_roi_size"]),
        mask_size=mask_size,
        keypoint_roi_size=int(model["keypoint_roi_size"]),
        sampling_ratio=int(model["sampling_ratio"]),
        roi_canonical_scale=_int_at_least("roi_canonical_scale", model["roi_canonical_scale"], 1),
        box_score_thresh=float(model["box_score_thresh"]),
        box_nms=float(model["box_nms"]),
        mask_threshold=float(model["mask_threshold"]),
        min_size=int(cfg.get("input", {}).get("min_size", 800)),
        max_size=int(cfg.get("input", {}).get("max_size", 1333)),
        **per_arch_int,
    )
