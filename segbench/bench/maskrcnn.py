"""Mask R-CNN speed and memory per registry run, beside torchvision's reference model in the same process.

For each run of ``--runs`` (registry names; ``all`` = every Mask R-CNN run) the run's ``model`` keys are
resolved at ``--scale`` (default ``paper``: the paper's widths and depths; ``smoke``/``mini`` for the
reduced CPU scales) with ``pretrained: false`` forced, so nothing downloads or loads, and with three benchmark
settings:

- the backbone's normalisation and frozen stages of training at that scale (:func:`training_backbone`): a
  run that starts from ImageNet (the paper's widths) trains with FrozenBatchNorm and the stem and res2
  frozen, a run pretrained in miniature (``smoke``, ``mini``) with its scale's norm and the same frozen
  stages; only the weights' values are random. Both models get them, and each row records ``norm`` and
  ``frozen_stages``;

- ``box_score_thresh: 0``, so inference always runs the mask (keypoint) branch on ``detections_per_image``
  boxes; random weights give no score above the paper's 0.05, which would time an empty mask branch;
- ``num_classes`` of the run's logical dataset as the paper used it: the ``num_classes`` of the real
  dataset the registry maps it to (datasets.yaml: 81 for COCO, 2 for the person-keypoint runs), whatever
  synthetic stand-in the scale trains on.

Images are ``--size H x W`` (``min_size = min(H, W)``, ``max_size = max(H, W)``: no resizing), random pixels
with ``--objects`` random boxes (and box masks / keypoints as the run's tasks need), ``--batch`` images per
step. A training step is forward + backward of the summed losses (no optimizer update); every step
re-seeds the RNG so both models see the same proposals and sample the same RoIs. Inference is the eval
forward with post-processing (mask pasting). ``--amp`` runs the forward passes under
``torch.autocast("cuda", float16)`` (no loss scaling: this times the work, it does not train); CUDA only.

torchvision's reference exists where torchvision has the same model: ResNet-50-FPN with tasks box
(``fasterrcnn_resnet50_fpn``), box+mask (``maskrcnn_resnet50_fpn``) or box+keypoint
(``keypointrcnn_resnet50_fpn``), with averaging RoIAlign (not aligned), the FCN mask head, the per-class
sigmoid mask loss and torchvision's pooler sizes. It is built with the run's settings (RPN, anchors, RoI
sampling, test-time limits, sizes); at the paper's widths by the torchvision builder itself, at reduced
widths as torchvision's detection class of that name on ``BackboneWithFPN`` over the same width-divided
torchvision ResNet and torchvision's heads of the run's widths. segbench's model then gets the reference's
weights (the reference's background mask channel dropped), so both do identical work, and the result
records how far their losses and detections are apart. Any other run gets ``reference: null`` and a
``reference_reason``.

Everything runs under training's determinism settings (:func:`segbench.determinism.training_settings`:
deterministic algorithms, cuDNN deterministic, no cuDNN autotuning), recorded in ``settings.determinism``.
Timings interleave the two models (:func:`segbench.bench.timing.time_interleaved`); peak memory is measured
first, one call per model and phase (:func:`segbench.bench.timing.peak_memory_mb`).
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from segbench import determinism
from segbench.bench.timing import (
    memory_method,
    peak_memory_mb,
    resolve_device,
    time_interleaved,
    timing_entry,
)
from segbench.errors import InputError

TITLE = "Mask R-CNN: training img/s, inference ms/img, peak memory (torchvision's reference beside)"
OPTIONS: dict[str, Any] = {
    "runs": None,  # the registry's benchmarks.maskrcnn.runs
    "scale": "paper",
    "size": None,  # 320x320 on CPU, 800x1333 (the paper's) on CUDA
    "batch": 1,
    "iters": 5,
    "warmup": 1,
    "amp": False,
    "objects": 4,
    "device": None,
    "threads": 1,
}
DEFAULT_SIZE = {"cpu": (320, 320), "cuda": (800, 1333)}
TORCHVISION_MODELS = {
    ("box",): "fasterrcnn_resnet50_fpn",
    ("box", "mask"): "maskrcnn_resnet50_fpn",
    ("box", "keypoint"): "keypointrcnn_resnet50_fpn",
}
COLUMNS = [
    {"key": "run", "label": "run"},
    {"key": "variant", "label": "variant", "terminal": False},
    {"key": "reference.model", "label": "torchvision reference"},
    {"key": "train_img_s", "label": "train img/s", "format": ".3g"},
    {"key": "reference.train_img_s", "label": "ref train img/s", "format": ".3g"},
    {"key": "train_time_ratio", "label": "train time ratio", "format": ".3f"},
    {"key": "infer_ms_per_img", "label": "infer ms/img", "format": ".1f"},
    {"key": "reference.infer_ms_per_img", "label": "ref infer ms/img", "format": ".1f"},
    {"key": "infer_time_ratio", "label": "infer time ratio", "format": ".3f"},
    {"key": "train_peak_mb", "label": "train peak MiB", "format": ".0f"},
    {"key": "reference.train_peak_mb", "label": "ref train peak MiB", "format": ".0f"},
    {"key": "infer_peak_mb", "label": "infer peak MiB", "format": ".0f"},
    {"key": "reference.infer_peak_mb", "label": "ref infer peak MiB", "format": ".0f"},
    {"key": "note", "label": "agreement / note"},
]


def parse_size(value: Any) -> tuple[int, int]:
    """``"HxW"`` (or one number for a square) -> ``(H, W)``; a one-line :class:`InputError` otherwise."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        parts = [str(v) for v in value]
    else:
        text = str(value).strip().lower()
        parts = text.split("x") if "x" in text else [text, text]
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"--size {value!r}: expected HxW in pixels, e.g. 320x320 or 800x1333") from None
    if min(height, width) < 32:
        raise InputError(f"--size {value!r}: both sides must be >= 32 pixels (the FPN's coarsest stride)")
    return height, width


def run_names(value: str | None) -> list[str]:
    """The Mask R-CNN runs ``--runs`` names (comma-separated, or ``all``), in the order given; ``None``:
    the registry's default (``benchmarks.maskrcnn.runs`` in experiments.yaml)."""
    from segbench.registry import load_registry

    registry = load_registry()
    runs = registry["runs"]
    if value is None:
        value = ",".join(registry.get("benchmarks", {}).get("maskrcnn", {}).get("runs", []))
    maskrcnn = [name for name, spec in runs.items() if spec["family"] == "maskrcnn"]
    names = (
        maskrcnn if str(value).strip() == "all" else [n.strip() for n in str(value).split(",") if n.strip()]
    )
    if not names:
        raise InputError("--runs: no run given; name registry runs (e.g. r50_fpn,r50_c4) or 'all'")
    for name in names:
        if name not in runs:
            raise InputError(f"--runs: unknown run {name!r}; `segbench list --runs` shows the runs")
        if runs[name]["family"] != "maskrcnn":
            raise InputError(
                f"--runs: {name!r} is a {runs[name]['family']} run; this suite takes Mask R-CNN runs"
            )
    return list(dict.fromkeys(names))


def bench_config(run: str, scale: str, size: tuple[int, int]) -> dict[str, Any]:
    """The run's resolved config at ``scale``, with the benchmark's overrides (module docstring)."""
    from segbench.data.registry import dataset_entry
    from segbench.registry import real_datasets, resolve_run

    cfg = resolve_run(run, scale)
    model = cfg["model"]
    _, model["norm"], _ = training_backbone(cfg)
    model["pretrained"] = False
    model["box_score_thresh"] = 0.0
    classes = [
        dataset_entry(d)["num_classes"]
        for d in real_datasets(cfg["dataset"]["logical"])
        if "num_classes" in dataset_entry(d)
    ]
    if classes:  # else the model's default (COCO's 81)
        model["num_classes"] = classes[0]
    cfg["input"] = {**cfg["input"], "min_size": min(size), "max_size": max(size)}
    return cfg


FROZEN_STAGES = ("conv1", "bn1", "layer1")  # the stem and res2, as fine-tuning from pretrained weights


def training_backbone(cfg: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """``(weights, norm, frozen stages)`` training builds this run's backbone with at its scale
    (:func:`segbench.models.maskrcnn.backbones.build_backbone`), read from the resolved config alone:
    the scale's miniature pretraining where it has one (``synthetic-pretrained``), torchvision's ImageNet
    weights where the ResNet has the paper's widths and depths (a run refuses to start without them), else
    ``random``. Norm ``auto`` is FrozenBatchNorm with ImageNet weights, trainable BatchNorm otherwise; any
    pretrained start freezes the stem and res2."""
    from segbench.models.backbone_specs import backbone_spec
    from segbench.models.maskrcnn.config import settings_from_config

    s = settings_from_config(cfg)
    if not s.pretrained:
        weights = "random"
    elif cfg.get("pretraining") or s.pretrained_weights:
        weights = "synthetic-pretrained"
    elif s.width_divisor == 1 and s.blocks == backbone_spec(s.backbone).blocks:
        weights = "imagenet"
    else:
        weights = "random"
    norm = s.norm if s.norm != "auto" else ("frozen_bn" if weights == "imagenet" else "bn")
    return weights, norm, () if weights == "random" else FROZEN_STAGES


def freeze(model: nn.Module, stages: tuple[str, ...]) -> None:
    """``requires_grad_(False)`` on ``stages`` of the model's ResNet trunk (the first module with them)."""
    if not stages:
        return
    for module in model.modules():
        if all(hasattr(module, name) for name in stages):
            for name in stages:
                getattr(module, name).requires_grad_(False)
            return
    raise InputError(f"no ResNet trunk with {', '.join(stages)} in {type(model).__name__}")


def variant(s: Any) -> str:
    """A short description of a run's model, e.g. ``resnet50-fpn roi_align-avg fcn sigmoid box+mask``."""
    layer = f"{s.roi_layer}-{s.roi_aggregation}" + ("-aligned" if s.roi_aligned else "")
    head = (
        "" if not s.has_mask else f" {s.mask_head} {s.mask_loss}" + (" agnostic" if s.class_agnostic else "")
    )
    return f"{s.backbone}-{s.arch} {layer}{head} {'+'.join(s.tasks)}"


# -- torchvision's reference ------------------------------------------------------------------------------
def reference_reason(s: Any) -> str | None:
    """Why torchvision has no same model for settings ``s`` (None where it has one)."""
    tasks = tuple(t for t in ("box", "mask", "keypoint") if t in s.tasks)
    if tasks not in TORCHVISION_MODELS:
        return f"torchvision has no detection model with tasks {'+'.join(tasks)}"
    if (s.backbone, s.arch) != ("resnet50", "fpn"):
        return (
            f"torchvision's reference detection models are ResNet-50-FPN; this run is {s.backbone}-{s.arch}"
        )
    if (s.roi_layer, s.roi_aggregation, s.roi_aligned) != ("roi_align", "avg", False):
        return (
            f"torchvision's MultiScaleRoIAlign is averaging RoIAlign (aligned=False); this run uses "
            f"{s.roi_layer}-{s.roi_aggregation}" + (" aligned" if s.roi_aligned else "")
        )
    if s.has_mask and s.mask_head not in ("fcn", "default"):
        return f"torchvision's mask head is the FCN head; this run uses {s.mask_head}"
    if s.has_mask and (s.mask_loss != "sigmoid" or s.class_agnostic):
        return "torchvision's mask loss is the per-class sigmoid; this run uses " + (
            "class-agnostic masks" if s.class_agnostic else f"the {s.mask_loss} loss"
        )
    if (s.box_roi_size, s.mask_size, s.keypoint_roi_size, s.sampling_ratio) != (7, 28, 14, 2):
        return "torchvision's poolers are 7x7 (box) and 14x14 (mask, keypoint) with sampling ratio 2"
    return None


def _paper_widths(s: Any) -> bool:
    from segbench.models.backbone_specs import backbone_spec

    return (
        s.width_divisor,
        s.blocks,
        s.fpn_channels,
        s.box_head_dim,
        s.mask_head_dim,
        s.keypoint_head_dim,
    ) == (1, backbone_spec("resnet50").blocks, 256, 1024, 256, 512)


def torchvision_reference(s: Any) -> tuple[nn.Module, str, str]:
    """``(model, name, how it was built)`` of torchvision's model with the settings ``s``."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    from segbench.models.maskrcnn.torchvision_ref import sampling_kwargs

    name = TORCHVISION_MODELS[tuple(t for t in ("box", "mask", "keypoint") if t in s.tasks)]
    kwargs: dict[str, Any] = {
        "num_classes": s.num_classes,
        "min_size": s.min_size,
        "max_size": s.max_size,
        "rpn_anchor_generator": AnchorGenerator(
            tuple((a,) for a in s.rpn_anchor_sizes), (tuple(s.rpn_aspect_ratios),) * len(s.rpn_anchor_sizes)
        ),
        **sampling_kwargs(s),
    }
    if s.has_keypoint:
        kwargs["num_keypoints"] = s.num_keypoints
    if _paper_widths(s):
        return _paper_width_reference(s, name, kwargs)
    return _reduced_width_reference(s, name, kwargs)


def _paper_width_reference(s: Any, name: str, kwargs: dict[str, Any]) -> tuple[nn.Module, str, str]:
    """torchvision's ``<name>`` built as its builder builds it (``resnet50`` through
    ``_resnet_fpn_extractor`` into the detection class), with the run's norm layer: FrozenBatchNorm2d
    where training starts from ImageNet, as the builder does with ImageNet weights. Values random."""
    from torchvision.models import detection, resnet50
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor

    from segbench.models.maskrcnn.backbones import NORM_LAYERS

    cls = {
        "fasterrcnn_resnet50_fpn": detection.FasterRCNN,
        "maskrcnn_resnet50_fpn": detection.MaskRCNN,
        "keypointrcnn_resnet50_fpn": detection.KeypointRCNN,
    }[name]
    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=NORM_LAYERS[s.norm]), 5)
    how = f"torchvision {name}'s construction, norm {s.norm}, random weights"
    return cls(backbone, **kwargs), name, how


def _reduced_width_reference(s: Any, name: str, kwargs: dict[str, Any]) -> tuple[nn.Module, str, str]:
    from torchvision.models.detection import FasterRCNN, KeypointRCNN, MaskRCNN
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    from segbench.models.maskrcnn.backbones import NORM_LAYERS, STAGE_WIDTHS, ScaledResNet

    resnet = ScaledResNet(s.blocks, width_divisor=s.width_divisor, norm_layer=NORM_LAYERS[s.norm])
    backbone = BackboneWithFPN(
        resnet,
        {f"layer{i}": str(i - 1) for i in range(1, 5)},
        [w // s.width_divisor for w in STAGE_WIDTHS],
        s.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    channels = s.fpn_channels
    num_classes = kwargs.pop("num_classes")
    heads: dict[str, Any] = {
        "box_head": TwoMLPHead(channels * s.box_roi_size**2, s.box_head_dim),
        "box_predictor": FastRCNNPredictor(s.box_head_dim, num_classes),
    }
    cls = FasterRCNN
    if s.has_mask:
        cls = MaskRCNN
        heads["mask_head"] = MaskRCNNHeads(channels, [s.mask_head_dim] * 4, 1)
        heads["mask_predictor"] = MaskRCNNPredictor(s.mask_head_dim, s.mask_head_dim, num_classes)
    if s.has_keypoint:
        cls = KeypointRCNN
        heads["keypoint_head"] = KeypointRCNNHeads(channels, [s.keypoint_head_dim] * 8)
        heads["keypoint_predictor"] = KeypointRCNNPredictor(s.keypoint_head_dim, kwargs.pop("num_keypoints"))
    model = cls(backbone, **heads, **kwargs)
    how = (
        f"torchvision {cls.__name__} on BackboneWithFPN(ResNet widths / {s.width_divisor}, blocks "
        f"{list(s.blocks)}, norm {s.norm}) with torchvision's heads at the run's widths ({name} at reduced "
        "width)"
    )
    return model, name, how


class KernelScoped(nn.Module):
    """torchvision's model, its forward in :func:`segbench.determinism.torchvision_kernels` as the training
    reference runs it (on a GPU under deterministic mode, torchvision's RoIAlign would otherwise take its
    Python fallback)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None) -> Any:
        with determinism.torchvision_kernels(images[0].device, "torchvision reference forward"):
            return self.model(images, targets)


def copy_reference_weights(ours: nn.Module, theirs: nn.Module) -> str | None:
    """Load the reference's weights into ours (its background mask channel dropped); None or the reason."""
    state = theirs.state_dict()
    for suffix in ("weight", "bias"):
        key = f"roi_heads.mask_predictor.mask_fcn_logits.{suffix}"
        if key in state:
            state[key] = state[key][1:]
    try:
        ours.load_state_dict(state)
    except RuntimeError as exc:
        return "weights not copied: " + " ".join(str(exc).split())[:300]
    return None


# -- inputs and steps -------------------------------------------------------------------------------------
def random_batch(
    size: tuple[int, int],
    batch: int,
    num_objects: int,
    num_classes: int,
    tasks: tuple[str, ...],
    num_keypoints: int,
    device: torch.device,
    seed: int = 0,
) -> tuple[list[torch.Tensor], list[dict]]:
    """``batch`` random images of ``size`` with ``num_objects`` random boxes each (box masks, keypoints)."""
    height, width = size
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(batch):
        images.append(torch.rand(3, height, width, generator=g).to(device))
        scale = torch.tensor([width, height], dtype=torch.float32)
        xy = torch.rand(num_objects, 2, generator=g) * scale * 0.6
        wh = torch.rand(num_objects, 2, generator=g) * scale * 0.3 + 16
        boxes = torch.cat([xy, torch.minimum(xy + wh, scale - 1)], dim=1)
        target = {"boxes": boxes, "labels": torch.randint(1, num_classes, (num_objects,), generator=g)}
        if "mask" in tasks:
            masks = torch.zeros(num_objects, height, width, dtype=torch.uint8)
            for mask, box in zip(masks, boxes.round().int(), strict=True):
                mask[box[1] : box[3], box[0] : box[2]] = 1
            target["masks"] = masks
        if "keypoint" in tasks:
            u = torch.rand(num_objects, num_keypoints, 2, generator=g)
            points = boxes[:, None, :2] + u * (boxes[:, None, 2:] - boxes[:, None, :2])
            target["keypoints"] = torch.cat([points, torch.full((num_objects, num_keypoints, 1), 2.0)], dim=2)
        targets.append({k: v.to(device) for k, v in target.items()})
    return images, targets


def _autocast(amp: bool) -> contextlib.AbstractContextManager:
    return torch.autocast("cuda", dtype=torch.float16) if amp else contextlib.nullcontext()


def train_step(model: nn.Module, images: list, targets: list, amp: bool = False) -> Callable[[], dict]:
    def step() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)  # the same proposal and RoI sampling in every step and in both models
        model.train()
        model.zero_grad(set_to_none=True)
        with _autocast(amp):
            losses = model(images, targets)
        sum(losses.values()).backward()
        return losses

    return step


def inference(model: nn.Module, images: list, amp: bool = False) -> Callable[[], list[dict]]:
    @torch.no_grad()
    def run() -> list[dict[str, torch.Tensor]]:
        model.eval()
        with _autocast(amp):
            return model(images)

    return run


def agreement(ours: nn.Module, theirs: nn.Module, images: list, targets: list, amp: bool) -> dict[str, Any]:
    """How far apart the two models' losses and detections are (same weights, same sampling)."""
    loss_ours, loss_theirs = (
        train_step(ours, images, targets, amp)(),
        train_step(theirs, images, targets, amp)(),
    )
    common = [k for k in loss_theirs if k in loss_ours]
    loss_gap = max(abs(loss_ours[k].item() - loss_theirs[k].item()) for k in common) if common else None
    det_ours, det_theirs = inference(ours, images, amp)(), inference(theirs, images, amp)()
    same_boxes = all(
        a["boxes"].shape == b["boxes"].shape and torch.allclose(a["boxes"], b["boxes"], atol=1e-3)
        for a, b in zip(det_ours, det_theirs, strict=True)
    )
    out: dict[str, Any] = {
        "max_abs_loss_difference": loss_gap,
        "losses_compared": common,
        "same_boxes": same_boxes,
        "detections": [len(d["boxes"]) for d in det_ours],
    }
    if same_boxes and "masks" in det_theirs[0]:
        gaps = [
            (a["masks"].float() - (b["masks"] >= 0.5).float()).abs().mean().item()
            for a, b in zip(det_ours, det_theirs, strict=True)
            if len(b["boxes"])
        ]
        out["mask_pixels_differing"] = max(gaps) if gaps else 0.0
    if same_boxes and "keypoints" in det_theirs[0]:
        gaps = [
            (a["keypoints"] - b["keypoints"]).abs().max().item()
            for a, b in zip(det_ours, det_theirs, strict=True)
            if len(b["boxes"])
        ]
        out["max_abs_keypoint_difference"] = max(gaps) if gaps else 0.0
    return out


def agreement_note(a: dict[str, Any]) -> str:
    gap = a["max_abs_loss_difference"]
    parts = [
        f"max |loss diff| {gap:.1e}" if gap is not None else "no common losses",
        f"same boxes: {'yes' if a['same_boxes'] else 'no'} ({sum(a['detections'])} detections)",
    ]
    if "mask_pixels_differing" in a:
        parts.append(f"mask pixels differing {a['mask_pixels_differing']:.1e}")
    if "max_abs_keypoint_difference" in a:
        parts.append(f"max |keypoint diff| {a['max_abs_keypoint_difference']:.1e}")
    return "; ".join(parts)


# -- the suite --------------------------------------------------------------------------------------------
def _measure(
    models: dict[str, nn.Module], images: list, targets: list, opts: dict[str, Any], device: torch.device
) -> dict[str, dict[str, Any]]:
    """Peak memory of each model's training step and inference (measured before any timing round)."""
    out: dict[str, dict[str, Any]] = {name: {} for name in models}
    for name, model in models.items():

        def drop_grads(model: nn.Module = model) -> None:
            model.zero_grad(set_to_none=True)

        for phase, make in (
            ("train", lambda m: train_step(m, images, targets, opts["amp"])),
            ("infer", lambda m: inference(m, images, opts["amp"])),
        ):
            peak, note = peak_memory_mb(make(model), device, reset=drop_grads)
            out[name][f"{phase}_peak_mb"] = peak
            if note:
                out[name][f"{phase}_peak_note"] = note
        drop_grads()
    return out


def _timings(
    models: dict[str, nn.Module],
    images: list,
    targets: list,
    opts: dict[str, Any],
    device: torch.device,
    out: dict[str, dict[str, Any]],
) -> None:
    batch = len(images)
    train = time_interleaved(
        {n: train_step(m, images, targets, opts["amp"]) for n, m in models.items()},
        warmup=opts["warmup"],
        iters=opts["iters"],
        device=device,
    )
    infer = time_interleaved(
        {n: inference(m, images, opts["amp"]) for n, m in models.items()},
        warmup=opts["warmup"],
        iters=opts["iters"],
        device=device,
    )
    for name in models:
        ms_step = train[name]["median_ms"]
        out[name].update(
            train_ms_per_step=ms_step,
            train_img_s=batch / (ms_step / 1e3),
            infer_ms_per_img=infer[name]["median_ms"] / batch,
            train_min_ms_per_step=train[name]["min_ms"],
            infer_min_ms_per_img=infer[name]["min_ms"] / batch,
            timings=[
                timing_entry(
                    "train step (ms/step)", name, train[name]["samples_ms"], reference=name != "segbench"
                ),
                timing_entry(
                    "inference (ms/img)",
                    name,
                    [t / batch for t in infer[name]["samples_ms"]],
                    reference=name != "segbench",
                ),
            ],
        )


def bench_run(run: str, opts: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """One row: segbench's model of ``run`` (and torchvision's reference where there is one)."""
    from segbench.models.maskrcnn import build_maskrcnn, settings_from_config
    from segbench.registry import resolve_run

    cfg = bench_config(run, opts["scale"], opts["size"])
    weights, norm, frozen = training_backbone(resolve_run(run, opts["scale"]))
    s = settings_from_config(cfg)
    torch.manual_seed(0)
    ours = build_maskrcnn(cfg).to(device)
    freeze(ours, frozen)
    reason = reference_reason(s)
    models: dict[str, nn.Module] = {"segbench": ours}
    ref_name = ref_how = copy_note = None
    if reason is None:
        theirs, ref_name, ref_how = torchvision_reference(s)
        freeze(theirs, frozen)
        copy_note = copy_reference_weights(ours, theirs)
        models["torchvision"] = KernelScoped(theirs).to(device)
    images, targets = random_batch(
        opts["size"], opts["batch"], opts["objects"], s.num_classes, s.tasks, s.num_keypoints, device
    )
    measured = _measure(models, images, targets, opts, device)
    agree = None
    if "torchvision" in models and copy_note is None:
        agree = agreement(ours, models["torchvision"], images, targets, opts["amp"])
    _timings(models, images, targets, opts, device, measured)
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    timings = [{**t, "what": f"{run}: {t['what']}"} for n in models for t in measured[n].pop("timings")]
    row: dict[str, Any] = {
        "run": run,
        "variant": variant(s),
        "norm": norm,
        "frozen_stages": list(frozen),
        "training_starts_from": weights,
        "params": params["segbench"],
        **measured["segbench"],
        "reference": None,
        "reference_reason": reason,
        "train_time_ratio": None,
        "infer_time_ratio": None,
    }
    if "torchvision" in models:
        ref = measured["torchvision"]
        row["reference"] = {
            "model": ref_name,
            "built_as": ref_how,
            "params": params["torchvision"],
            **ref,
            "weights_copied": copy_note is None,
            "agreement": agree,
        }
        row["train_time_ratio"] = row["train_ms_per_step"] / ref["train_ms_per_step"]
        row["infer_time_ratio"] = row["infer_ms_per_img"] / ref["infer_ms_per_img"]
    row["timings"] = timings  # min / median / max and samples of every timing, ours beside the reference
    row["note"] = agreement_note(agree) if agree else (copy_note or f"no reference: {reason}")
    del models, ours
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def run(options: dict[str, Any]) -> dict[str, Any]:
    """The suite: one row per run (see the module docstring)."""
    device = resolve_device(options["device"])
    if options["amp"] and device.type != "cuda":
        raise InputError("--amp needs --device cuda (torch.autocast float16); CPU runs are float32 only")
    from segbench.registry import check_scale

    check_scale(options["scale"])
    size = parse_size(options["size"] if options["size"] is not None else DEFAULT_SIZE[device.type])
    for key in ("batch", "iters", "objects"):
        if int(options[key]) < 1:
            raise InputError(f"--{key} {options[key]}: must be >= 1")
    if int(options["warmup"]) < 0:
        raise InputError(f"--warmup {options['warmup']}: must be >= 0")
    runs = run_names(options["runs"])
    opts = {**options, "size": size, "device": str(device)}
    rows = []
    with determinism.training_settings() as flags:  # what training sets (seed_everything)
        for i, name in enumerate(runs, start=1):
            print(
                f"segbench bench maskrcnn: {name} ({i}/{len(runs)}), {size[0]}x{size[1]}, batch {opts['batch']}, "
                f"{opts['iters']} iterations after {opts['warmup']} warm-up, {device}",
                file=sys.stderr,
                flush=True,
            )
            rows.append(bench_run(name, opts, device))
    settings = {
        **opts,
        "size": f"{size[0]}x{size[1]}",
        "runs": runs,
        "memory_method": memory_method(device),
        "train_step": "forward + backward of the summed losses (no optimizer update)",
        "overrides": {"pretrained": False, "box_score_thresh": 0.0},
        "determinism": flags,
        "backbone": "each row's norm and frozen_stages: training's at this scale (training_backbone)",
    }
    notes = [
        "time ratio = segbench time / torchvision time (< 1: segbench faster); img/s and ms/img are medians "
        f"of {opts['iters']} interleaved iterations.",
        "Peak memory: " + memory_method(device) + ".",
        "As training runs: deterministic algorithms on, cuDNN deterministic, no autotuning; each run's backbone "
        "norm and frozen stages as training at this scale sets them (weights random).",
    ]
    return {
        "rows": rows,
        "columns": COLUMNS,
        "settings": settings,
        "notes": notes,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "scale": opts["scale"],
    }
