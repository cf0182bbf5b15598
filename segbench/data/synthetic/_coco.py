"""COCO annotation records for the synthetic COCO-format datasets (shapes, keypoints).

Masks are stored as compressed RLE (``iscrowd: 0``), which pycocotools' ``annToMask`` and faster-coco-eval
decode exactly, so ``area`` (the mask's pixel count) and ``bbox`` (its tight box) agree with the mask.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segbench.data.synthetic import _draw as draw
from segbench.optional import require

COCO_REFERENCE_SIZE = 640  # COCO images are ~640 px on the long side; its area buckets are 32^2, 96^2.


SPLIT_ID_BASE = {"train": 0, "val": 1_000_000}  # image ids are unique across splits, as in COCO


def area_thresholds(image_size: int) -> list[float]:
    """COCO's small/medium/large bounds (32^2, 96^2 at 640 px) scaled to ``image_size`` by area."""
    scale = (image_size / COCO_REFERENCE_SIZE) ** 2
    return [32.0**2 * scale, 96.0**2 * scale]


def mask_annotation(mask: np.ndarray, ann_id: int, image_id: int, category_id: int) -> dict[str, Any]:
    """One ``iscrowd: 0`` annotation for a visible-part mask (RLE, area = pixel count, tight bbox)."""
    mask_utils = require("pycocotools.mask", "writing COCO-format masks (RLE)")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "iscrowd": 0,
        "area": float(mask.sum()),
        "bbox": bbox,
        "segmentation": rle,
    }


def image_record(image_id: int, file_name: str, size: int) -> dict[str, Any]:
    return {"id": image_id, "file_name": file_name, "width": size, "height": size}


def dataset_json(
    *,
    images: list,
    annotations: list,
    categories: list,
    generator: str,
    seed: int,
    split: str,
    image_size: int,
    description: str,
) -> dict[str, Any]:
    """A COCO annotation file; ``info.segbench`` records the area thresholds that suit the image size."""
    return {
        "info": {
            "description": description,
            "version": "1.0",
            "year": 2024,
            "segbench": {
                "generator": generator,
                "seed": seed,
                "split": split,
                "image_size": image_size,
                "area_thresholds": area_thresholds(image_size),
            },
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def write_coco_dataset(
    out_dir: Path,
    p: dict[str, Any],
    seed: int,
    *,
    render: Callable,
    annotate: Callable,
    annotation_stem: str,
    categories: list,
    generator: str,
    description: str,
) -> None:
    """Write both splits of a synthetic COCO-format dataset: ``images/<split>/*.png`` and
    ``annotations/<stem>_<split>.json``. ``render(rng, p) -> (image, items)`` draws one image;
    ``annotate(item, ann_id, image_id) -> dict`` makes an item's annotation. Each image depends only on
    the seed and its own index."""
    for split in ("train", "val"):
        images, annotations = [], []
        for index in range(int(p[f"num_{split}"])):
            image_id = SPLIT_ID_BASE[split] + index + 1
            file_name = f"{image_id:012d}.png"
            image, items = render(draw.item_rng(seed, split, index), p)
            draw.write_png(out_dir / "images" / split / file_name, image)
            images.append(image_record(image_id, file_name, int(p["image_size"])))
            annotations.extend(
                annotate(item, image_id * 100 + k + 1, image_id) for k, item in enumerate(items)
            )
        draw.write_json(
            out_dir / "annotations" / f"{annotation_stem}_{split}.json",
            dataset_json(
                images=images,
                annotations=annotations,
                categories=categories,
                generator=generator,
                seed=seed,
                split=split,
                image_size=int(p["image_size"]),
                description=description,
            ),
        )
