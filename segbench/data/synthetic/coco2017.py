"""``coco2017``: a tree in COCO 2017's own layout, for the rehearsal scale (no real images).

The rehearsal runs the paper's code paths on data that looks like COCO to every reader: the directory
names, JPEG files named by 12-digit image id, images of COCO's common sizes (640 x 480, 640 x 427,
480 x 640, ...), the 80 categories with their real ids (1..90 with gaps, so the 91-id space and the
contiguous-label mapping are exercised), supercategories, and the person-keypoint file with COCO's 17
keypoints and skeleton::

    train2017/<12-digit id>.jpg                     val2017/<12-digit id>.jpg
    annotations/instances_{train,val}2017.json       annotations/person_keypoints_{train,val}2017.json

Image content is the ``shapes`` and ``keypoints`` generators' (drawn on a square canvas of the long side,
then cropped to the image size); shape objects take COCO category ids, figures are ``person`` and carry
keypoints in both files, as in COCO. Area buckets are COCO's own (32^2, 96^2): the images are COCO-sized.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segbench.data.synthetic import _draw as draw
from segbench.data.synthetic import keypoints, shapes
from segbench.data.synthetic._coco import SPLIT_ID_BASE, dataset_json, mask_annotation

# (id, name, supercategory) of COCO's 80 categories, as in instances_*2017.json (ids 12, 26, 29, 30, 45,
# 66, 68, 69, 71, 83 are unused).
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"),
    (4, "motorcycle", "vehicle"), (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"),
    (8, "truck", "vehicle"), (9, "boat", "vehicle"), (10, "traffic light", "outdoor"),
    (11, "fire hydrant", "outdoor"), (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"),
    (15, "bench", "outdoor"), (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"),
    (19, "horse", "animal"), (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"),
    (23, "bear", "animal"), (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"),
    (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"),
    (65, "bed", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture"),
    (72, "tv", "electronic"), (73, "laptop", "electronic"), (74, "mouse", "electronic"),
    (75, "remote", "electronic"), (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
    (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"),
    (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
)  # fmt: skip
PERSON_ID = 1
OTHER_IDS = [cid for cid, _, _ in COCO_CATEGORIES if cid != PERSON_ID]  # what shape objects are labelled
INSTANCE_CATEGORIES = [{"id": i, "name": n, "supercategory": s} for i, n, s in COCO_CATEGORIES]
KEYPOINT_CATEGORIES = keypoints.CATEGORIES  # person, with COCO's 17 keypoints and skeleton

DEFAULTS: dict[str, Any] = {
    "num_train": 4,
    "num_val": 2,
    # (width, height): the commonest sizes in COCO (640 x 480 is about a third of the images)
    "image_sizes": [[640, 480], [640, 427], [480, 640], [500, 375], [427, 640], [612, 612]],
    "person_fraction": 0.5,  # images drawn as persons (with keypoints) rather than shapes
    "objects_per_image": [2, 8],
    "object_size": [16, 400],
    "persons_per_image": [1, 4],
    "person_height": [80, 560],
    "min_visible_area": 64,
    "noise_std": 6.0,
    "min_contrast": 40.0,
    "jpeg_quality": 90,
}


def generate(out_dir: Path, params: dict[str, Any], seed: int) -> None:
    """Write both splits (``train2017``, ``val2017``) and the four annotation files under ``out_dir``."""
    p = {**DEFAULTS, **params}
    for split in ("train", "val"):
        images, instances, person_keypoints = [], [], []
        for index in range(int(p[f"num_{split}"])):
            image_id = SPLIT_ID_BASE[split] + index + 1
            file_name = f"{image_id:012d}.jpg"
            image, objects = render_image(draw.item_rng(seed, split, index), p)
            write_jpeg(out_dir / f"{split}2017" / file_name, image, int(p["jpeg_quality"]))
            height, width = image.shape[:2]
            images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
            for k, (category_id, mask, kps) in enumerate(objects):
                ann = mask_annotation(mask, image_id * 100 + k + 1, image_id, category_id)
                instances.append(ann)
                if kps is not None:
                    person_keypoints.append(
                        {**ann, "keypoints": kps, "num_keypoints": int(sum(v > 0 for v in kps[2::3]))}
                    )
        for stem, records, categories in (
            ("instances", instances, INSTANCE_CATEGORIES),
            ("person_keypoints", person_keypoints, KEYPOINT_CATEGORIES),
        ):
            draw.write_json(
                out_dir / "annotations" / f"{stem}_{split}2017.json",
                dataset_json(
                    images=images,
                    annotations=records,
                    categories=categories,
                    generator="coco2017",
                    seed=seed,
                    split=f"{split}2017",
                    image_size=640,  # COCO's own area buckets, 32^2 and 96^2
                    description="segbench rehearsal data in COCO 2017's layout (synthetic content)",
                ),
            )


def render_image(
    rng: np.random.Generator, p: dict[str, Any]
) -> tuple[np.ndarray, list[tuple[int, np.ndarray, list[float] | None]]]:
    """One RGB image of a COCO size and its objects as ``(category_id, visible_mask, keypoints or None)``."""
    width, height = p["image_sizes"][int(rng.integers(len(p["image_sizes"])))]
    side = max(width, height)
    objects: list[tuple[int, np.ndarray, list[float] | None]] = []
    if rng.random() < float(p["person_fraction"]):
        canvas, persons = keypoints.render_image(rng, {**keypoints.DEFAULTS, **p, "image_size": side})
        for mask, kps in persons:
            objects.append((PERSON_ID, mask[:height, :width], cropped_keypoints(kps, width, height)))
    else:
        canvas, shapes_drawn = shapes.render_image(rng, {**shapes.DEFAULTS, **p, "image_size": side})
        for _, mask in shapes_drawn:
            objects.append((OTHER_IDS[int(rng.integers(len(OTHER_IDS)))], mask[:height, :width], None))
    min_area = int(p["min_visible_area"])
    kept = [
        (cid, mask, kps)
        for cid, mask, kps in objects
        if mask.sum() >= min_area and (kps is None or any(kps[2::3]))
    ]
    return canvas[:height, :width], kept


def cropped_keypoints(kps: list[float], width: int, height: int) -> list[float]:
    """COCO ``[x, y, v] * 17`` with the points outside the cropped image unlabelled (``0, 0, 0``)."""
    out: list[float] = []
    for x, y, v in zip(kps[0::3], kps[1::3], kps[2::3], strict=True):
        inside = v > 0 and round(x) < width and round(y) < height
        out += [x, y, v] if inside else [0.0, 0.0, 0]
    return out


def write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """A baseline JPEG as COCO's (PIL's encoder with fixed settings: byte-stable for the same pixels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with draw.naming(path):
        Image.fromarray(image).save(path, format="JPEG", quality=quality, optimize=False)
