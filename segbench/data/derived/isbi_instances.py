"""``isbi_instances``: COCO instance crops of an ISBI 2012 stack, for Mask R-CNN on the real EM data.

The labels of ISBI 2012 (Arganda-Carreras et al. 2015) are binary: 255 = cell, 0 = membrane. Each
4-connected cell region of a slice is an instance of one class, "cell" (4-connectivity: two regions that
touch only at a corner are separated by membrane pixels on both other sides, so they are two cells;
8-connectivity would merge them). Mask R-CNN (He et al. 2017) is evaluated by COCO AP with
``maxDets = 100`` detections per image, and a 512 x 512 slice of the real stack holds 86-132 cells, so each
slice is cut into ``crop`` x ``crop`` crops (128 px: 2-23 instances per crop on the real stack, median 11)
and the instances are labelled per crop: a cell cut by the crop border is its crop-local part.

Regions of fewer than ``min_pixels`` pixels are dropped (20 px: slivers of a cell cut by the crop border,
and specks of labelling noise, too small to hold a 14 x 14 or 28 x 28 mask target of the paper's heads).
On the real stack 99 of the 3,431 whole-slice regions are below 20 px (0.02 % of the cell pixels); in the
128-px crops 445 of 5,564 crop-local regions are dropped, 388 of them touching the crop border, leaving
5,119 instances in 480 crops.

Folds: one annotation file per fold and split, ``annotations/instances_fold<k>_{train,val}.json``, fold k
holding out the crops of the slices that the U-Net's fold k holds out
(:func:`segbench.data.biomedical.held_out_slices`: 30 slices, 5 folds -> slices 6k..6k+5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from segbench.data.biomedical import held_out_slices, load_isbi_stack
from segbench.data.synthetic import _draw as draw
from segbench.data.synthetic._coco import area_thresholds, mask_annotation
from segbench.errors import InputError
from segbench.io import dumps, write_text_atomic

DEFAULTS: dict[str, Any] = {"crop": 128, "min_pixels": 20, "folds": 5}
CELL = 255  # ISBI 2012 label of a cell (non-membrane) pixel
MAX_DETS = 100  # COCO's maxDets: a crop may hold no more instances than the evaluation counts
CATEGORIES = [{"id": 1, "name": "cell", "supercategory": "cell"}]
FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def cell_instances(labels: np.ndarray, min_pixels: int) -> tuple[np.ndarray, int]:
    """(instance ids, dropped count) of a binary label image: its 4-connected ``CELL`` regions numbered
    1..n in raster order, those of fewer than ``min_pixels`` pixels set to 0 and counted."""
    regions, count = ndimage.label(labels == CELL, structure=FOUR_CONNECTED)
    sizes = np.bincount(regions.ravel(), minlength=count + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    renumber = np.zeros(count + 1, dtype=np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return renumber[regions], int(count - keep[1:].sum())


def crop_origins(height: int, width: int, crop: int) -> list[tuple[int, int]]:
    """Top-left corners of the crops that tile a ``height`` x ``width`` slice in raster order; where a side
    is not a multiple of ``crop``, the last crop is flush with the edge (it overlaps its neighbour)."""
    if crop < 1 or crop > min(height, width):
        raise InputError(
            f"isbi_instances: crop {crop} must be between 1 and the slice size {height} x {width}"
        )

    def starts(size: int) -> list[int]:
        return sorted({*range(0, size - crop + 1, crop), size - crop})

    return [(y, x) for y in starts(height) for x in starts(width)]


def derive(source: dict[str, Any], out_dir: Path, params: dict[str, Any]) -> None:
    """Write ``images/*.png`` (grey crops), ``annotations/instances_fold<k>_<split>.json`` and
    ``derivation.json`` (the figures of the derivation) under ``out_dir`` from an ISBI 2012 dataset's
    paths (``{"volume", "labels"}``)."""
    p = {**DEFAULTS, **params}
    crop, min_pixels = int(p["crop"]), int(p["min_pixels"])
    volume, labels = load_isbi_stack(source["volume"], source["labels"])
    slices, height, width = volume.shape
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    per_crop, dropped = [], 0
    for z in range(slices):
        for y, x in crop_origins(height, width, crop):
            instances, lost = cell_instances(labels[z, y : y + crop, x : x + crop], min_pixels)
            count = int(instances.max())
            if count > MAX_DETS:
                raise InputError(
                    f"{source['labels']}: slice {z} crop ({y}, {x}) holds {count} instances, more than COCO's "
                    f"maxDets {MAX_DETS}; choose a smaller crop in datasets.yaml (params.crop, now {crop})"
                )
            image_id = len(images) + 1
            file_name = f"s{z:02d}_y{y:03d}_x{x:03d}.png"
            draw.write_png(
                out_dir / "images" / file_name, np.ascontiguousarray(volume[z, y : y + crop, x : x + crop])
            )
            images.append(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": crop,
                    "height": crop,
                    "slice": z,
                    "origin": [y, x],
                }
            )
            annotations += [
                mask_annotation(instances == k, image_id * 1000 + k, image_id, 1) for k in range(1, count + 1)
            ]
            per_crop.append(count)
            dropped += lost
    folds = min(int(p["folds"]), slices)
    for fold in range(folds):
        lo, hi = held_out_slices(slices, fold, folds)
        for split in ("train", "val"):
            chosen = {img["id"] for img in images if (lo <= img["slice"] < hi) == (split == "val")}
            data = {
                "info": {
                    "description": f"ISBI 2012 cell instances in {crop}-px crops, fold {fold} of {folds}, {split}",
                    "segbench": {
                        "derivation": "isbi_instances",
                        "params": p,
                        "fold": fold,
                        "folds": folds,
                        "held_out_slices": list(range(lo, hi)),
                        "split": split,
                        "image_size": crop,
                        "area_thresholds": area_thresholds(crop),
                    },
                },
                "licenses": [],
                "images": [img for img in images if img["id"] in chosen],
                "annotations": [a for a in annotations if a["image_id"] in chosen],
                "categories": CATEGORIES,
            }
            write_text_atomic(out_dir / "annotations" / f"instances_fold{fold}_{split}.json", dumps(data))
    counts = np.asarray(per_crop)
    summary = {
        "slices": slices,
        "crops": len(images),
        "crop": crop,
        "min_pixels": min_pixels,
        "instances": int(counts.sum()),
        "dropped_regions": dropped,
        "instances_per_crop": {
            "min": int(counts.min()),
            "median": float(np.median(counts)),
            "max": int(counts.max()),
        },
    }
    write_text_atomic(out_dir / "derivation.json", dumps(summary, indent=1))
