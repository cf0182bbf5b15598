"""Mask R-CNN training and COCO evaluation (He et al. 2017, section 3.1 "Implementation details").

Training: image-centric mini-batches grouped by aspect ratio, SGD with momentum 0.9 and weight decay 1e-4,
the step schedule with linear warm-up (lr 0.02, /10 at 120k of 160k iterations, 16 images on 8 GPUs at
paper scale), optional mixed precision on CUDA, DDP under ``torchrun``. Checkpoints carry the model,
optimizer, grad scaler, iteration and RNG states; the sampler is a pure function of (seed, batch
number), so an interrupted run resumes exactly where it stopped.

Evaluation: inference on the val split, predictions converted to COCO results (boxes xywh in original
image coordinates, masks binarised at 0.5 and RLE-encoded, keypoints), then COCO's AP/AR through
:func:`segbench.metrics.coco.evaluate`, with the synthetic datasets' scaled area thresholds.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from segbench.data.coco import CocoInstances, GroupedBatchSampler, Target, collate_detection
from segbench.engine import contract
from segbench.engine.checkpoint import load_final, run_identity
from segbench.engine.distributed import Replica, resolve_device
from segbench.engine.eval_curve import eval_iterations, eval_points
from segbench.engine.hooks import EvalCurveHook, HookBase
from segbench.engine.seeding import loader_options
from segbench.errors import InputError
from segbench.families import family_spec
from segbench.io import dumps, write_text_atomic
from segbench.optional import require
from segbench.progress import progress_bar
from segbench.records import COCO_DETAILS, HEADS, predictions_file
from segbench.schedule import (  # noqa: F401 - effective_schedule re-exported
    Schedule,
    effective_schedule,
)

log = logging.getLogger(__name__)

IOU_TYPES = {"box": "bbox", "mask": "segm", "keypoint": "keypoints"}
BOX_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
KEYPOINT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
COCO_AREA_THRESHOLDS = (32.0**2, 96.0**2)
CURVE_STATS = ("AP", "AP50", "AP75")  # per IoU type, per point of the evaluation curve (eval_curve.json)


# -- schedule -----------------------------------------------------------------------------------------
SCHEDULE_DEFAULTS = dict(family_spec("maskrcnn").schedule_defaults)


# -- data and model -----------------------------------------------------------------------------------
def split_paths(cfg: dict[str, Any], data_root: Path, split: str) -> tuple[Path, Path]:
    """(images folder, annotation file) of a split of the run's dataset; at a cross-validation scale
    (``cfg["split"]``: seed k is fold k) the layout's ``fold<k>_<split>``."""
    from segbench.data.registry import dataset_paths

    name = cfg["dataset"]["name"]
    key = split
    if "split" in cfg:
        key = f"fold{int(cfg['split']['fold'])}_{split}"
        if key not in cfg["dataset"].get("layout", {}):
            raise InputError(
                f"dataset {name!r} has no split {key!r} for {cfg['split']['folds']}-fold cross-validation; "
                f"add fold<k>_train / fold<k>_val to its layout in datasets.yaml"
            )
    paths = dataset_paths(name, Path(data_root))[key]
    return Path(paths["images"]), Path(paths["annotations"])


def open_train_split(cfg: dict[str, Any], data_root: Path) -> CocoInstances:
    """The training images with the targets the run's tasks need."""
    images, annotations = split_paths(cfg, data_root, "train")
    tasks = cfg["model"].get("tasks", ("box", "mask"))
    return CocoInstances(
        images, annotations, train=True, masks="mask" in tasks, keypoints="keypoint" in tasks
    )


def model_config(cfg: dict[str, Any], dataset: CocoInstances) -> dict[str, Any]:
    """``cfg`` with the class and keypoint counts of the annotation file (background included)."""
    out = copy.deepcopy(cfg)
    out["model"]["num_classes"] = dataset.num_classes
    if dataset.num_keypoints:
        out["model"]["num_keypoints"] = dataset.num_keypoints
    return out


def build_model(cfg: dict[str, Any]) -> torch.nn.Module:
    """The run's Mask R-CNN (:func:`segbench.models.maskrcnn.build_maskrcnn` through ``models.build``)."""
    from segbench.models import build
    from segbench.registry import registry_path

    try:
        return build(cfg)
    except InputError as exc:  # name the registry entry that holds the bad model key
        raise InputError(f"{registry_path()}: entry runs/{cfg['run']}/model: {exc}; fix that entry") from None


def pretrained_backbone(cfg: dict[str, Any], run_dir: Path) -> Path:
    """The run's miniature-pretrained backbone weights, checked against the sha256 their record pins, or
    pretrained now if nothing is pinned and the cache lacks them (the DAG's ``pretrain`` rule)."""
    from segbench.engine.pretrain import ensure_pretrained
    from segbench.paths import pretraining_scale, run_pretrained_weights

    path = run_pretrained_weights(cfg, run_dir)
    return ensure_pretrained(cfg["pretraining"], path, scale=pretraining_scale(cfg))


def apply_train_scales(model: torch.nn.Module, scales: list[int] | None) -> None:
    """Scale jitter of the keypoint runs (shorter side drawn from ``scales`` in training, the last at
    test time): torchvision's ``GeneralizedRCNNTransform`` does both when given a tuple of sizes."""
    transform = getattr(model, "transform", None)
    if scales and transform is not None and hasattr(transform, "min_size"):
        transform.min_size = tuple(int(s) for s in scales)


def _to_device(targets: list[Target], device: torch.device) -> list[Target]:
    return [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]


# -- training -----------------------------------------------------------------------------------------
class MaskRCNNFamily(contract.FamilyBase):
    """Mask R-CNN's part of the training contract (:class:`segbench.engine.contract.TrainingFamily`)."""

    distributed = family_spec("maskrcnn").distributed
    schedule_defaults = SCHEDULE_DEFAULTS
    # oneDNN's convolutions (and our RoI sampler, which reads rows of C) prefer NHWC: a mini R50-C4 step
    # 0.131 -> 0.120 s, R50-FPN 0.098 -> 0.091 s (one thread, 8 images of 128 px)
    channels_last_on_cpu = True

    def __init__(self, cfg: dict[str, Any], data_root: Path, run_dir: Path) -> None:
        self.cfg, self.data_root, self.run_dir = cfg, Path(data_root), Path(run_dir)
        self.dataset: CocoInstances | None = None
        self.val: tuple[CocoInstances, Path] | None = None  # the curve's images and annotation file
        self.backbone_init: dict[str, Any] | None = None  # the built model's segbench_init

    def schedule(self, *, replicas: int, gpus: int) -> Schedule:
        return effective_schedule(self.cfg, replicas=replicas, gpus=gpus)

    def build_model(self, schedule: Schedule) -> torch.nn.Module:
        self.dataset = open_train_split(self.cfg, self.data_root)
        cfg = model_config(self.cfg, self.dataset)
        if self.cfg.get("pretraining"):  # the scale pretrains its backbones in miniature (engine/pretrain.py)
            cfg["model"]["pretrained_weights"] = str(pretrained_backbone(self.cfg, self.run_dir))
        model = build_model(cfg)
        self.backbone_init = backbone_record(model)
        apply_train_scales(model, schedule.train_scales)
        return model

    def batches(
        self, schedule: Schedule, replica: Replica, device: torch.device, start: int
    ) -> Iterator[tuple[list[torch.Tensor], list[Target]]]:
        assert self.dataset is not None
        return _train_batches(self.dataset, schedule, self.cfg, replica, start, device)

    def loss(
        self,
        net: torch.nn.Module,
        batch: tuple[list[torch.Tensor], list[Target]],
        device: torch.device,
        amp: bool,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, targets = batch
        return forward_losses(net, images, targets, device, amp)

    def hooks(self, schedule: Schedule) -> list[HookBase]:
        """The evaluation curve at the schedule's ``eval_points`` (none at 0)."""
        points = eval_points(self.cfg, self)
        return [EvalCurveHook(eval_iterations(schedule.iterations, points))] if points else []

    def summary(self) -> dict[str, Any]:
        assert self.dataset is not None
        return {
            "num_classes": self.dataset.num_classes,
            "train_images": len(self.dataset),
            # where the backbone's weights came from (imagenet / synthetic-pretrained / random, the file)
            # and the norm it trained with (frozen_bn / bn / gn / none): train_done.json's summary
            "backbone_init": self.backbone_init,
        }

    def final_extras(self) -> dict[str, Any]:
        assert self.dataset is not None
        return {"category_ids": self.dataset.category_ids, "num_keypoints": self.dataset.num_keypoints}

    def evaluate_during_training(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        """One point of the evaluation curve: AP, AP50, AP75 per IoU type on the val split (the evaluate
        step's code path, :func:`split_metrics`)."""
        assert self.dataset is not None
        if self.val is None:
            images, annotations = split_paths(self.cfg, self.data_root, "val")
            gt = CocoInstances(images, annotations, train=False, masks=False)
            if gt.category_ids != self.dataset.category_ids:
                raise InputError(f"{annotations}: categories differ from the training split's")
            self.val = (gt, annotations)
        gt, annotations = self.val
        _, metrics = split_metrics(model, self.cfg, gt, annotations, device)
        return {iou_type: {k: stats[k] for k in CURVE_STATS} for iou_type, stats in metrics.items()}


def backbone_record(model: torch.nn.Module) -> dict[str, Any] | None:
    """The model's ``segbench_init`` for the records: weights source, file, norm, frozen stages (a
    miniature-pretrained file by its name, not its machine path)."""
    init = dict(getattr(model, "segbench_init", None) or {})
    if init.get("backbone_weights") == "synthetic-pretrained" and init.get("weights"):
        init["weights"] = Path(str(init["weights"])).name
    return init or None


def train(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None, gpus: int = 0
) -> dict[str, Any]:
    """Train (or resume) one run into ``run_dir``; returns the summary. A finished run is a no-op."""
    if cfg.get("pretraining"):  # fill the weights cache before the run seeds and builds anything
        pretrained_backbone(cfg, run_dir)
    return contract.train(MaskRCNNFamily(cfg, data_root, run_dir), cfg, run_dir, device=device, gpus=gpus)


def _train_batches(
    dataset: CocoInstances,
    schedule: Schedule,
    cfg: dict[str, Any],
    replica: Replica,
    start: int,
    device: torch.device,
) -> Iterator[tuple[list[torch.Tensor], list[Target]]]:
    """Endless image-centric batches of this replica, from batch ``start`` on (exact resume)."""
    sampler = GroupedBatchSampler(
        dataset.aspect_groups(),
        schedule.images_per_replica,
        seed=cfg["seed"],
        hflip=bool(cfg["input"].get("hflip", True)),
        rank=replica.rank,
        world_size=replica.world_size,
        start_batch=start,
    )
    options = loader_options(cfg["schedule"], device, cfg["seed"])
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_detection,
        persistent_workers=options["num_workers"] > 0,
        **options,
    )
    return iter(loader)


def forward_losses(
    net: torch.nn.Module, images: list[torch.Tensor], targets: list[Target], device: torch.device, amp: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training losses of one mini-batch: their sum and the detached terms (plus ``loss``)."""
    images = [im.to(device, non_blocking=True) for im in images]
    with torch.autocast(device.type, enabled=amp):
        loss_dict = net(images, _to_device(targets, device))
    loss = sum(loss_dict.values())
    terms = {k: v.detach() for k, v in loss_dict.items()}
    terms["loss"] = loss.detach()
    return loss, terms


# -- evaluation ---------------------------------------------------------------------------------------
def evaluate(
    cfg: dict[str, Any],
    run_dir: Path,
    data_root: Path,
    *,
    device: str | None = None,
    split: str = "val",
    backend: str = "pycocotools",
) -> dict[str, Any]:
    """COCO metrics of the trained run on ``split``; also writes the report's records (segbench.records):
    ``predictions_<split>.json``, ``heads.json`` and ``coco_details.json`` (per-class AP, PR curves)."""
    images, annotations = split_paths(cfg, data_root, split)
    gt = CocoInstances(images, annotations, train=False, masks=False)
    dev = resolve_device(device)
    model = load_final_model(cfg, run_dir, gt, dev)
    details: dict[str, dict[str, Any]] = {}
    results, metrics = split_metrics(model, cfg, gt, annotations, dev, backend, details)
    write_text_atomic(Path(run_dir) / predictions_file(split), dumps(results))
    write_head_record(model, cfg, run_dir)
    area = gt.area_thresholds  # scaled small/medium bounds of the synthetic datasets, else COCO's
    write_text_atomic(Path(run_dir) / COCO_DETAILS, dumps({"split": split, **details}, indent=1))
    metrics["eval"] = {
        "images": len(gt),
        "split": split,
        "backend": backend,
        "area_thresholds": list(area or COCO_AREA_THRESHOLDS),
        "area_thresholds_source": "dataset info.segbench" if area else "COCO default",
    }
    return metrics


def split_metrics(
    model: torch.nn.Module,
    cfg: dict[str, Any],
    gt: CocoInstances,
    annotations: Path,
    dev: torch.device,
    backend: str = "pycocotools",
    details: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """(COCO results, COCO statistics) per IoU type of ``model`` on the split ``gt`` (annotation file
    ``annotations``), with the dataset's area thresholds (the synthetic sets' scaled small/medium bounds,
    else COCO's); the model is left in eval mode. ``details``, if given, receives per IoU type the
    per-category AP, PR curves and class counts (:func:`segbench.metrics.coco.evaluation_details`)."""
    results = coco_results(model, cfg, gt, dev)
    area = gt.area_thresholds
    metrics: dict[str, Any] = {}
    for iou_type, dts in results.items():
        extra = None if details is None else details.setdefault(iou_type, {})
        metrics[iou_type] = coco_stats(annotations, dts, iou_type, area, backend, extra)
    return results, metrics


def predict_coco_results(
    cfg: dict[str, Any], run_dir: Path, images: CocoInstances, *, device: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """COCO result records per IoU type of the run's final model on ``images`` (any COCO-format image
    list, annotations optional: test-dev's image_info file works); see :func:`write_coco_results`."""
    dev = resolve_device(device)
    return coco_results(load_final_model(cfg, run_dir, images, dev), cfg, images, dev)


def load_final_model(
    cfg: dict[str, Any], run_dir: Path, images: CocoInstances, dev: torch.device
) -> torch.nn.Module:
    """The run's final model on ``dev``; ``images`` must have the training split's categories."""
    final = load_final(Path(run_dir), run_identity(cfg))
    if images.category_ids != final["category_ids"]:
        raise InputError(
            f"{images.annotation_file}: categories differ from the training split's; "
            "predict on a split of the same dataset"
        )
    model = build_model(model_config(cfg, images)).to(dev)
    model.load_state_dict(final["model"])
    return model


def write_head_record(model: torch.nn.Module, cfg: dict[str, Any], run_dir: Path) -> None:
    """``heads.json``: the model's RoI heads layer by layer (``describe_heads``), for Mask R-CNN Fig. 4."""
    from segbench.models.maskrcnn import describe_heads

    record = {
        "run": cfg["run"],
        "run_id": cfg.get("run_id", Path(run_dir).name),
        "rows": describe_heads(model),
    }
    write_text_atomic(Path(run_dir) / HEADS, dumps(record, indent=1))


def coco_results(
    model: torch.nn.Module, cfg: dict[str, Any], images: CocoInstances, dev: torch.device
) -> dict[str, list[dict[str, Any]]]:
    """COCO result records per IoU type of ``model`` on ``images``."""
    iou_types = [IOU_TYPES[t] for t in cfg["model"].get("tasks", ("box", "mask"))]
    threshold = float(cfg["model"].get("mask_threshold", 0.5))
    batch = int(cfg["schedule"].get("test_images_per_batch", 2))
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in iou_types}
    desc = f"{cfg.get('run_id', cfg['run'])} inference"  # two jobs' lines on one console stay apart
    for image_id, output in predict(model, images, dev, batch, desc=desc):
        records = coco_records(image_id, output, images.category_ids, iou_types, threshold)
        for iou_type, image_records in records.items():
            results[iou_type].extend(image_records)
    return results


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: CocoInstances,
    device: torch.device,
    images_per_batch: int = 2,
    desc: str = "inference",
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """(image id, output on the CPU) for every image of ``dataset``, in eval mode, batch by batch."""
    model.eval()
    loader = DataLoader(
        dataset,
        batch_size=images_per_batch,
        shuffle=False,
        collate_fn=collate_detection,
        num_workers=4 if device.type == "cuda" else 0,
    )
    with progress_bar(len(loader), desc=desc, unit="batch") as bar:
        for images, targets in loader:
            outputs = model([im.to(device, non_blocking=True) for im in images])
            for target, output in zip(targets, outputs, strict=True):
                yield int(target["image_id"]), {k: v.cpu() for k, v in output.items()}
            bar.update(1)


def coco_records(
    image_id: int,
    output: dict[str, torch.Tensor],
    category_ids: list[int],
    iou_types: Iterable[str],
    mask_threshold: float = 0.5,
) -> dict[str, list[dict[str, Any]]]:
    """One image's detections as COCO result records per IoU type (original image coordinates).

    ``output`` is torchvision's inference format: ``boxes`` (xyxy), ``labels`` (1..K), ``scores``,
    ``masks`` ([N, 1, H, W] probabilities already pasted into the image) and ``keypoints`` ([N, K, 3]).
    Masks are binarised at ``mask_threshold`` (0.5 in the paper, section 3.1) and RLE-encoded.
    """
    scores = output["scores"].tolist()
    categories = [category_ids[int(label) - 1] for label in output["labels"].tolist()]
    base = [
        {"image_id": image_id, "category_id": c, "score": s} for c, s in zip(categories, scores, strict=True)
    ]
    records: dict[str, list[dict[str, Any]]] = {}
    for iou_type in iou_types:
        if iou_type == "bbox":
            xywh = output["boxes"].clone()
            xywh[:, 2:] -= xywh[:, :2]
            values = [{"bbox": b} for b in xywh.tolist()]
        elif iou_type == "segm":
            values = [{"segmentation": rle} for rle in encode_masks(output["masks"], mask_threshold)]
        else:
            values = [{"keypoints": k} for k in output["keypoints"].flatten(1).tolist()]
        records[iou_type] = [{**b, **v} for b, v in zip(base, values, strict=True)]
    return records


def encode_masks(masks: torch.Tensor, threshold: float = 0.5) -> list[dict[str, Any]]:
    """Compressed RLEs (JSON-ready) of ``masks`` ([N, 1, H, W] or [N, H, W]) thresholded at ``threshold``."""
    if masks.numel() == 0:
        return []
    mask_utils = require("pycocotools.mask", "encoding Mask R-CNN masks as COCO RLE")
    binary = (masks.reshape(-1, *masks.shape[-2:]) >= threshold).numpy().astype(np.uint8)
    rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0)))
    return [{"size": r["size"], "counts": r["counts"].decode("ascii")} for r in rles]


def coco_stats(
    gt_file: Path,
    detections: list[dict[str, Any]],
    iou_type: str,
    area_thresholds: list[float] | None = None,
    backend: str = "pycocotools",
    details: dict[str, Any] | None = None,
) -> dict[str, float]:
    """COCO's summary statistics (fractions) by :func:`segbench.metrics.coco.evaluate`, all zeros where
    there is not a single detection; ``area_thresholds`` ([small_max, medium_max], px^2) replace COCO's
    32^2 / 96^2 for the APs/APm/APl buckets; ``details`` is filled with per-category AP, precision-recall
    curves and class counts (:func:`segbench.metrics.coco.evaluation_details`)."""
    from segbench.metrics.coco import evaluate as coco_evaluate
    from segbench.metrics.coco import stat_names

    if not detections:
        return dict.fromkeys(stat_names(iou_type), 0.0)
    extra = {"area_thresholds": area_thresholds} if area_thresholds else {}
    return coco_evaluate(gt_file, detections, iou_type, backend=backend, details=details, **extra)


def write_coco_results(
    results: dict[str, list[dict[str, Any]]],
    out_dir: Path,
    *,
    split: str = "test-dev2017",
    algorithm: str = "segbench",
) -> list[Path]:
    """Result files in the COCO evaluation server's naming, one per IoU type (bbox and segm are judged
    separately): ``detections_<split>_<alg>-bbox_results.json``, ``..._<alg>-segm_results.json``,
    ``person_keypoints_<split>_<alg>_results.json``."""
    names = {
        "bbox": f"detections_{split}_{algorithm}-bbox_results.json",
        "segm": f"detections_{split}_{algorithm}-segm_results.json",
        "keypoints": f"person_keypoints_{split}_{algorithm}_results.json",
    }
    written = []
    for iou_type, records in results.items():
        path = Path(out_dir) / names[iou_type]
        write_text_atomic(path, dumps(records))
        written.append(path)
    return written
