"""The COCO-format loader and the aspect-ratio-grouped sampler (segbench.data.coco)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segbench.data.coco import (
    CocoInstances,
    GroupedBatchSampler,
    collate_detection,
    keypoint_flip_permutation,
)
from segbench.errors import InputError

KEYPOINT_NAMES = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]  # COCO's, in its order
CATEGORY_IDS = (3, 7)  # non-contiguous on purpose: labels must become 1, 2


def write_tiny_coco(root: Path, *, keypoints: bool = False, images: int = 6) -> dict[str, dict[str, Path]]:
    """A small COCO split pair (train == val content) of landscape and portrait images with
    rectangles, plus one crowd and one degenerate instance and one image without instances.
    Returns ``{"train": {"images", "annotations"}, "val": {...}}`` like ``dataset_paths``."""
    rng = np.random.default_rng(0)
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    records, anns = [], []
    for image_id in range(1, images + 1):
        height, width = (48, 64) if image_id % 2 else (64, 48)
        pixels = np.full((height, width, 3), 20, dtype=np.uint8)
        if image_id < images:  # the last image has no instances
            for k in range(2):
                w, h = int(rng.integers(12, 20)), int(rng.integers(12, 20))
                x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
                category = CATEGORY_IDS[k % 2]
                pixels[y : y + h, x : x + w] = 120 if category == 3 else 230
                ann = {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "iscrowd": 0,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                }
                if keypoints:
                    ann["keypoints"] = _keypoints_in_box(x, y, w, h)
                    ann["num_keypoints"] = len(KEYPOINT_NAMES) - 1
                anns.append(ann)
        Image.fromarray(pixels).save(image_dir / f"{image_id:04d}.png")
        records.append({"id": image_id, "file_name": f"{image_id:04d}.png", "height": height, "width": width})
    anns.append(
        {
            "id": len(anns) + 1,
            "image_id": 1,
            "category_id": 3,
            "iscrowd": 1,
            "bbox": [0, 0, 10, 10],
            "area": 100,
            "segmentation": {"size": [48, 64], "counts": [0, 100, 2972]},
        }
    )
    anns.append(
        {
            "id": len(anns) + 1,
            "image_id": 1,
            "category_id": 7,
            "iscrowd": 0,
            "bbox": [5, 5, 0.5, 8],
            "area": 4,
            "segmentation": [[5, 5, 5.5, 5, 5.5, 13, 5, 13]],
        }
    )
    if keypoints:
        for ann in anns[-2:]:
            ann["keypoints"], ann["num_keypoints"] = [0] * 3 * len(KEYPOINT_NAMES), 0
    categories = [{"id": c, "name": f"shape{c}", "supercategory": "shape"} for c in CATEGORY_IDS]
    if keypoints:
        for c in categories:
            c["keypoints"], c["skeleton"] = KEYPOINT_NAMES, [[16, 14], [14, 12]]
    data = {
        "info": {"segbench": {"area_thresholds": [64.0, 256.0]}},
        "images": records,
        "annotations": anns,
        "categories": categories,
    }
    ann_file = root / "annotations.json"
    ann_file.write_text(json.dumps(data))
    split = {"images": image_dir, "annotations": ann_file}
    return {"train": split, "val": split}


def serve_tiny_coco(mp: pytest.MonkeyPatch, paths: dict[str, dict[str, Path]]) -> None:
    """Make the Mask R-CNN engine read every split from ``paths`` (:func:`write_tiny_coco`) instead of a data root."""
    import segbench.engine.maskrcnn as engine

    mp.setattr(
        engine, "split_paths", lambda cfg, root, split: (paths[split]["images"], paths[split]["annotations"])
    )


def _keypoints_in_box(x: int, y: int, w: int, h: int) -> list[float]:
    """COCO ``[x, y, v] * 17`` spread over the box; the last keypoint is unlabeled (v = 0)."""
    points = []
    for j in range(len(KEYPOINT_NAMES)):
        visible = j < len(KEYPOINT_NAMES) - 1
        points += [x + (j % 4 + 0.5) * w / 4, y + (j // 4 + 0.5) * h / 5, 2 - j % 2] if visible else [0, 0, 0]
    return points


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, dict[str, Path]]:
    return write_tiny_coco(tmp_path, keypoints=True)


def _dataset(paths: dict[str, dict[str, Path]], **kwargs) -> CocoInstances:
    kwargs.setdefault("train", True)
    return CocoInstances(paths["train"]["images"], paths["train"]["annotations"], **kwargs)


def test_targets_follow_torchvision_format(tiny):
    ds = _dataset(tiny, keypoints=True)
    assert len(ds) == 5 and ds.num_classes == 3 and ds.num_keypoints == 17
    assert (ds.skipped.crowd, ds.skipped.degenerate, ds.skipped.images_without_instances) == (1, 1, 1)
    raw = json.loads(tiny["train"]["annotations"].read_text())
    image, target = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 48, 64)
    assert 0 <= image.min() < image.max() <= 1
    first = [a for a in raw["annotations"] if a["image_id"] == 1 and not a["iscrowd"] and a["bbox"][2] >= 1]
    x, y, w, h = first[0]["bbox"]
    assert target["boxes"][0].tolist() == [x, y, x + w, y + h]
    assert target["labels"].tolist() == [ds.label_of_category[a["category_id"]] for a in first] == [1, 2]
    assert [ds.category_of_label(lab) for lab in (1, 2)] == list(CATEGORY_IDS)
    assert target["masks"].dtype == torch.uint8 and target["masks"].shape == (2, 48, 64)
    assert int(target["masks"][0].sum()) == w * h
    assert target["keypoints"].shape == (2, 17, 3)
    assert target["keypoints"][0].flatten().tolist() == pytest.approx(first[0]["keypoints"])
    assert ds.area_thresholds == [64.0, 256.0]


def test_eval_split_keeps_images_without_instances(tiny):
    ds = _dataset(tiny, train=False, masks=False)
    assert len(ds) == 6
    _, target = ds[5]
    assert target["boxes"].shape == (0, 4) and "masks" not in target


def _box_of_mask(mask: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_flip_is_consistent_across_image_boxes_masks_and_keypoints(tiny):
    ds = _dataset(tiny, keypoints=True)
    image, target = ds[1]
    flipped_image, flipped = ds[(1, True)]
    width = image.shape[-1]
    assert torch.equal(flipped_image, image.flip(-1))
    assert torch.equal(flipped["masks"], target["masks"].flip(-1))
    for box, mask in zip(flipped["boxes"], flipped["masks"], strict=True):
        assert box.tolist() == _box_of_mask(mask)
    # left and right swap names as well as sides: the flipped left eye is the mirrored right eye
    left, right = KEYPOINT_NAMES.index("left_eye"), KEYPOINT_NAMES.index("right_eye")
    assert torch.equal(flipped["keypoints"][:, left, 0], width - target["keypoints"][:, right, 0])
    assert torch.equal(flipped["keypoints"][:, left, 2], target["keypoints"][:, right, 2])
    assert torch.equal(flipped["keypoints"][:, 0, 1], target["keypoints"][:, 0, 1])
    assert not flipped["keypoints"][:, KEYPOINT_NAMES.index("left_ankle")].any()  # mirrors the unlabeled one
    assert torch.equal(flipped["labels"], target["labels"])


def test_keypoint_flip_permutation_swaps_left_and_right():
    coco = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "tail"]
    assert keypoint_flip_permutation(coco) == [0, 2, 1, 4, 3, 5]


@pytest.mark.parametrize(
    "defect, message",
    [
        (lambda d: "{not json", "malformed"),
        (lambda d: json.dumps({"images": d["images"]}), "no 'annotations' list"),
        (
            lambda d: json.dumps({**d, "annotations": [{**d["annotations"][0], "image_id": 999}]}),
            "image_id 999",
        ),
        (
            lambda d: json.dumps(
                {**d, "annotations": [{**d["annotations"][0], "segmentation": [[1, 2, 3, 4]]}]}
            ),
            "2 points",
        ),
    ],
)
def test_malformed_annotations_raise_input_error_naming_the_file(tiny, defect, message):
    ann_file = tiny["train"]["annotations"]
    ann_file.write_text(defect(json.loads(ann_file.read_text())))
    with pytest.raises(InputError, match=message) as err:
        _dataset(tiny)
    assert str(ann_file) in str(err.value) and "\n" not in str(err.value)


def test_missing_image_file_raises_input_error(tiny):
    (tiny["train"]["images"] / "0002.png").unlink()
    with pytest.raises(InputError, match="0002.png"):
        _dataset(tiny)


def _take(sampler: GroupedBatchSampler, n: int) -> list[list[tuple[int, bool]]]:
    return list(itertools.islice(iter(sampler), n))


def test_sampler_groups_by_aspect_ratio_and_is_deterministic():
    groups = [0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0]
    batches = _take(GroupedBatchSampler(groups, 2, seed=3, hflip=True), 30)
    assert all(len(b) == 2 and groups[b[0][0]] == groups[b[1][0]] for b in batches)
    assert {f for b in batches for _, f in b} == {True, False}
    assert batches == _take(GroupedBatchSampler(groups, 2, seed=3, hflip=True), 30)
    assert batches != _take(GroupedBatchSampler(groups, 2, seed=4, hflip=True), 30)
    assert not any(f for b in _take(GroupedBatchSampler(groups, 2, seed=3, hflip=False), 30) for _, f in b)


def test_sampler_resumes_at_a_batch_and_shards_ranks():
    groups = [i % 3 == 0 for i in range(40)]
    stream = _take(GroupedBatchSampler(groups, 4, seed=0, hflip=True), 25)
    assert _take(GroupedBatchSampler(groups, 4, seed=0, hflip=True, start_batch=17), 8) == stream[17:]
    ranks = [
        {
            i
            for b in _take(GroupedBatchSampler(groups, 2, seed=0, hflip=False, rank=r, world_size=2), 9)
            for i, _ in b
        }
        for r in (0, 1)
    ]
    assert not ranks[0] & ranks[1]  # the first epoch's shards are disjoint


def test_collate_keeps_images_of_different_sizes(tiny):
    ds = _dataset(tiny)
    images, targets = collate_detection([ds[0], ds[1]])
    assert [im.shape[-2:] for im in images] == [(48, 64), (64, 48)] and len(targets) == 2
