"""COCO-format instance data for Mask R-CNN (He et al. 2017, section 3.1 "Implementation details").

One loader for the real COCO 2017 splits and the synthetic ``shapes``/``keypoints`` datasets, which share
the format. Targets follow torchvision's detection convention: ``boxes`` (xyxy, float), ``labels``
(contiguous 1..K; 0 is background), ``masks`` (uint8 [N, H, W]) and, for keypoint data, ``keypoints``
([N, K, 3] as x, y, visibility).

Resizing is *not* done here: the model's ``GeneralizedRCNNTransform`` resizes the shorter side to
``cfg["input"]["min_size"]`` (longer side at most ``max_size``) and maps predictions back to the
original image, which COCO evaluation needs. Images therefore leave this module at their original size.

Randomness lives in :class:`GroupedBatchSampler` only: it draws the image order and the horizontal
flips from ``(seed, epoch)`` and can start at any batch, so a resumed run sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from segbench.errors import InputError
from segbench.io import read_json
from segbench.metrics.coco_checks import check_ground_truth
from segbench.optional import require

if TYPE_CHECKING:
    import pycocotools.coco

log = logging.getLogger(__name__)

SampleKey = tuple[int, bool]  # (image index, horizontally flipped)
Target = dict[str, torch.Tensor]


@dataclass
class SkipCounts:
    """Annotations and images left out of a split, logged once when the split is loaded."""

    crowd: int = 0
    degenerate: int = 0
    images_without_instances: int = 0
    images_without_keypoints: int = 0

    def describe(self) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in vars(self).items())


@dataclass
class ImageRecord:
    image_id: int
    path: Path
    height: int
    width: int
    annotations: list[dict[str, Any]] = field(default_factory=list)


def keypoint_flip_permutation(names: Sequence[str]) -> list[int]:
    """Index permutation that swaps ``left_*`` and ``right_*`` keypoints under a horizontal flip."""
    position = {name: i for i, name in enumerate(names)}
    swapped = {"left_": "right_", "right_": "left_"}
    perm = []
    for name in names:
        prefix = next((p for p in swapped if name.startswith(p)), None)
        partner = swapped[prefix] + name[len(prefix) :] if prefix else name
        perm.append(position.get(partner, position[name]))
    return perm


def load_coco_json(annotation_file: Path, *, annotations_required: bool = True) -> dict[str, Any]:
    """Read and validate a COCO instances/keypoints file; every defect is a one-line InputError.
    ``annotations_required=False`` accepts image lists without annotations (test-dev's image_info)."""
    data = read_json(annotation_file, "COCO annotation file")
    if not annotations_required and isinstance(data, dict):
        data.setdefault("annotations", [])
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise InputError(
                f"{annotation_file}: not a COCO annotation file (no '{key}' list); "
                "point the dataset at instances_*.json / person_keypoints_*.json"
            )
    image_ids = {img["id"] for img in data["images"]}
    for ann in data["annotations"]:
        if ann.get("image_id") not in image_ids:
            raise InputError(
                f"{annotation_file}: annotation {ann.get('id')} points at image_id "
                f"{ann.get('image_id')}, which is not in 'images'; add the image or drop the "
                "annotation"
            )
        segm = ann.get("segmentation")
        if isinstance(segm, list):
            for poly in segm:
                if len(poly) < 6:
                    raise InputError(
                        f"{annotation_file}: annotation {ann.get('id')} has a polygon with "
                        f"{len(poly) // 2} points (< 3); drop that polygon or regenerate the "
                        "file"
                    )
    check_ground_truth(data, str(annotation_file))
    return data


def coco_api(data: dict[str, Any]) -> pycocotools.coco.COCO:
    """A pycocotools ``COCO`` over an already-loaded dict, without its progress prints."""
    api = require("pycocotools.coco", "reading COCO-format annotations").COCO()
    api.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()
    return api


class CocoInstances(Dataset):
    """Images and torchvision-style targets of one COCO-format split.

    ``train=False`` keeps every image and accepts a file without annotations (test-dev's image_info);
    ``train=True`` drops crowd and degenerate instances (logged) and images left without any instance
    (and, with ``keypoints``, images without a visible keypoint: the paper trains its keypoint models on
    "images that contain annotated keypoints", section 5). Items are indexed by an int or by a
    :data:`SampleKey` ``(index, flip)`` as the :class:`GroupedBatchSampler` yields them.
    """

    def __init__(
        self,
        images_dir: Path,
        annotation_file: Path,
        *,
        train: bool,
        masks: bool = True,
        keypoints: bool = False,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.annotation_file = Path(annotation_file)
        self.with_masks = masks
        data = load_coco_json(self.annotation_file, annotations_required=train)
        self.coco = coco_api(data)
        self.category_ids: list[int] = sorted(c["id"] for c in data["categories"])
        self.label_of_category = {cid: label for label, cid in enumerate(self.category_ids, start=1)}
        self.keypoint_names: list[str] = next(
            (list(c["keypoints"]) for c in data["categories"] if c.get("keypoints")), []
        )
        if keypoints and not self.keypoint_names:
            raise InputError(
                f"{self.annotation_file}: no category lists 'keypoints'; "
                "keypoint runs need a person_keypoints_*.json file"
            )
        self.with_keypoints = keypoints
        self.keypoint_flip = keypoint_flip_permutation(self.keypoint_names)
        info = data.get("info") or {}
        self.area_thresholds: list[float] | None = (info.get("segbench") or {}).get("area_thresholds")
        self.skipped = SkipCounts()
        self.records = self._build_records(data, train)
        if train and not self.records:
            raise InputError(
                f"{self.annotation_file}: no training images left after filtering "
                f"({self.skipped.describe()}); fix the boxes (width and height >= 1 px) or "
                "regenerate the file"
            )
        log.info("%s: %d images (%s)", self.annotation_file.name, len(self.records), self.skipped.describe())

    @property
    def num_classes(self) -> int:
        """Foreground categories plus one for the background."""
        return len(self.category_ids) + 1

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    def category_of_label(self, label: int) -> int:
        return self.category_ids[label - 1]

    def aspect_groups(self) -> list[int]:
        """0 for landscape (width >= height), 1 for portrait: the groups of image-centric batches."""
        return [int(r.width < r.height) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, Target]:
        index, flip = (int(key), False) if isinstance(key, (int, np.integer)) else key
        record = self.records[index]
        image = self._read_image(record)
        target = self._target(record)
        return hflip(image, target, self.keypoint_flip) if flip else (image, target)

    # -- building -------------------------------------------------------------------------------------
    def _build_records(self, data: dict[str, Any], train: bool) -> list[ImageRecord]:
        by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ann in data["annotations"]:
            if ann.get("iscrowd", 0):
                self.skipped.crowd += 1
            elif len(ann.get("bbox") or []) != 4 or ann["bbox"][2] < 1 or ann["bbox"][3] < 1:
                self.skipped.degenerate += 1
            else:
                by_image[ann["image_id"]].append(ann)
        records = []
        for img in sorted(data["images"], key=lambda i: i["id"]):
            anns = sorted(by_image.get(img["id"], []), key=lambda a: a["id"])
            if train and not anns:
                self.skipped.images_without_instances += 1
                continue
            if train and self.with_keypoints and not any(a.get("num_keypoints", 0) > 0 for a in anns):
                self.skipped.images_without_keypoints += 1
                continue
            path = self.images_dir / img["file_name"]
            if not path.is_file():
                raise InputError(
                    f"{self.annotation_file}: image {img['id']} is missing on disk ({path}); "
                    "re-download or regenerate the dataset (segbench data)"
                )
            records.append(ImageRecord(img["id"], path, int(img["height"]), int(img["width"]), anns))
        return records

    def _read_image(self, record: ImageRecord) -> torch.Tensor:
        try:
            with Image.open(record.path) as img:
                pixels = np.asarray(img.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(
                f"{record.path}: unreadable image ({exc}); re-download or regenerate it"
            ) from None
        image = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
        if tuple(image.shape[-2:]) != (record.height, record.width):
            raise InputError(
                f"{record.path}: image is {tuple(image.shape[-2:])} but "
                f"{self.annotation_file.name} says {(record.height, record.width)}; "
                "fix the annotation file"
            )
        return image.float().div_(255.0)

    def _target(self, record: ImageRecord) -> Target:
        anns = record.annotations
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2].clamp_(0, record.width)
        boxes[:, 1::2].clamp_(0, record.height)
        target: Target = {
            "boxes": boxes,
            "labels": torch.tensor(
                [self.label_of_category[a["category_id"]] for a in anns], dtype=torch.int64
            ),
            "image_id": torch.tensor(record.image_id),
        }
        if self.with_masks:
            masks = np.zeros((len(anns), record.height, record.width), dtype=np.uint8)
            for i, ann in enumerate(anns):
                if ann.get("segmentation"):
                    masks[i] = self.coco.annToMask(ann)
            target["masks"] = torch.from_numpy(masks)
        if self.with_keypoints:
            k = self.num_keypoints
            points = [a.get("keypoints") or [0.0] * (3 * k) for a in anns]
            target["keypoints"] = torch.tensor(points, dtype=torch.float32).reshape(-1, k, 3)
        return target


def hflip(image: torch.Tensor, target: Target, keypoint_flip: Sequence[int]) -> tuple[torch.Tensor, Target]:
    """Mirror an image and its target; keypoints also swap left/right (``keypoint_flip``)."""
    width = image.shape[-1]
    flipped = dict(target)
    boxes = target["boxes"]
    flipped["boxes"] = torch.stack(
        [width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1
    )
    if "masks" in target:
        flipped["masks"] = target["masks"].flip(-1)
    if "keypoints" in target:
        points = target["keypoints"][:, list(keypoint_flip)].clone()
        points[..., 0] = width - points[..., 0]
        points[points[..., 2] == 0] = 0  # unlabeled keypoints stay (0, 0, 0)
        flipped["keypoints"] = points
    return image.flip(-1), flipped


class GroupedBatchSampler:
    """An endless stream of image-centric mini-batches whose images share an aspect-ratio group.

    Each epoch draws a permutation and the flip coins from ``(seed, epoch)``; with ``world_size`` > 1
    rank ``r`` takes every ``world_size``-th image of that permutation (DistributedSampler-style). Images
    wait in their group's bucket until it holds ``batch_size`` of them, across epoch boundaries.
    ``start_batch`` skips that many batches, which is how a resumed run continues where it stopped.
    """

    def __init__(
        self,
        groups: Sequence[int],
        batch_size: int,
        *,
        seed: int,
        hflip: bool,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        if not groups:
            raise InputError("no training images left after filtering; check the annotation file")
        if batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid batch_size={batch_size}, rank={rank}, world_size={world_size}")
        self.groups = list(groups)
        self.batch_size = batch_size
        self.seed = seed
        self.hflip = hflip
        self.rank = rank
        self.world_size = world_size
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[list[SampleKey]]:
        buckets: dict[int, list[SampleKey]] = defaultdict(list)
        produced = 0
        epoch = 0
        while True:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.groups))
            flips = rng.random(len(self.groups)) < 0.5
            for index in order[self.rank :: self.world_size].tolist():
                bucket = buckets[self.groups[index]]
                bucket.append((index, bool(self.hflip and flips[index])))
                if len(bucket) == self.batch_size:
                    if produced >= self.start_batch:
                        yield list(bucket)
                    produced += 1
                    bucket.clear()
            epoch += 1


def collate_detection(batch: list[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """Keep images of different sizes as a list (the model pads them into one batch)."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
