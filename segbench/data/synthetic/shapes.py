"""``shapes``: COCO-format instance segmentation of textured, mutually occluding shapes.

Five classes (ids 1..5: circle, square, triangle, ellipse, star) painted in order on a textured, noisy
background; later shapes cover earlier ones and each mask is the *visible* part. Object sizes (the
side of the unrotated bounding box) are log-uniform in ``object_size`` so COCO's small/medium/large
buckets, scaled to the image size (:func:`~segbench.data.synthetic._coco.area_thresholds`, recorded in
``info.segbench.area_thresholds``), are all populated. Layout (as COCO)::

    images/{train,val}/<12-digit id>.png
    annotations/instances_{train,val}.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from segbench.data.synthetic import _draw as draw
from segbench.data.synthetic._coco import mask_annotation, write_coco_dataset

CLASSES = ("circle", "square", "triangle", "ellipse", "star")
CATEGORIES = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]

DEFAULTS: dict[str, Any] = {
    "image_size": 160,
    "num_train": 400,
    "num_val": 100,
    "objects_per_image": [4, 10],
    "object_size": [6, 110],
    "min_visible_area": 6,
    "noise_std": 10.0,
    "min_contrast": 0.0,
}


def with_contrast(texture: np.ndarray, background: np.ndarray, min_contrast: float) -> np.ndarray:
    """Shift an object's texture (N x 3) so its mean colour is at least ``min_contrast`` (RGB distance)
    from the mean of the background it covers; 0 keeps it as drawn (objects may then blend in)."""
    if min_contrast <= 0:
        return texture
    offset = texture.mean(axis=0) - background.mean(axis=0)
    distance = float(np.linalg.norm(offset))
    if distance >= min_contrast:
        return texture
    direction = offset / distance if distance > 1e-6 else np.array([1.0, 1.0, 1.0]) / np.sqrt(3)
    if (background.mean(axis=0) + direction * min_contrast).mean() > 235:  # no headroom: go darker
        direction = -direction
    return texture + direction * (min_contrast - distance)


def generate(out_dir: Path, params: dict[str, Any], seed: int) -> None:
    """Write both splits of a shapes dataset under ``out_dir``."""
    write_coco_dataset(
        out_dir,
        {**DEFAULTS, **params},
        seed,
        render=render_image,
        annotate=lambda item, ann_id, image_id: mask_annotation(item[1], ann_id, image_id, item[0]),
        annotation_stem="instances",
        categories=CATEGORIES,
        generator="shapes",
        description="segbench synthetic shapes (COCO-format instance segmentation)",
    )


def example_image(
    seed: int = 0, split: str = "val", index: int = 0, **params: Any
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Image ``index`` of ``split`` as ``generate`` would draw it for ``seed`` and ``params`` (over
    :data:`DEFAULTS`), with its objects as ``(category_id, visible_mask)``; no files are written."""
    return render_image(draw.item_rng(seed, split, index), {**DEFAULTS, **params})


def render_image(
    rng: np.random.Generator, p: dict[str, Any]
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One RGB image and its objects as ``(category_id, visible_mask)``, in painting order."""
    size = int(p["image_size"])
    shape = (size, size)
    image = draw.textured_background(rng, size)
    owner = np.full(shape, -1, np.int32)  # index of the object that is visible at each pixel
    drawn: list[int] = []
    lo, hi = p["objects_per_image"]
    for k in range(int(rng.integers(lo, hi + 1))):
        category_id = int(rng.integers(1, len(CLASSES) + 1))
        extent = float(np.exp(rng.uniform(*np.log(p["object_size"]))))
        cx, cy = rng.uniform(0.05, 0.95, size=2) * size
        mask = shape_mask(shape, CLASSES[category_id - 1], cx, cy, extent, rng.uniform(0, 2 * np.pi), rng)
        if not mask.any():
            continue
        window = ndimage.find_objects(mask.astype(np.uint8))[0]  # paint only the object's bounding box
        inside = mask[window]
        texture = object_texture(rng, inside.shape, extent)[inside]
        image[window][inside] = with_contrast(texture, image[window][inside], float(p["min_contrast"]))
        owner[mask] = k
        drawn.append(category_id)
    image = ndimage.gaussian_filter(image, sigma=(0.6, 0.6, 0))
    image += rng.normal(0.0, float(p["noise_std"]), image.shape)
    objects = []
    for k, category_id in enumerate(drawn):
        visible = owner == k
        if visible.sum() >= int(p["min_visible_area"]):
            objects.append((category_id, visible))
    return draw.to_uint8(image), objects


def shape_mask(
    shape: tuple[int, int],
    name: str,
    cx: float,
    cy: float,
    extent: float,
    angle: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Mask of one shape whose unrotated bounding box is about ``extent`` pixels across."""
    r = extent / 2
    if name == "circle":
        return draw.ellipse_mask(shape, cx, cy, r, r)
    if name == "ellipse":
        return draw.ellipse_mask(shape, cx, cy, r, r * rng.uniform(0.35, 0.65), angle)
    if name == "square":
        return draw.polygon_mask(shape, regular_polygon(cx, cy, r * np.sqrt(2) * 0.75, 4, angle))
    if name == "triangle":
        return draw.polygon_mask(shape, regular_polygon(cx, cy, r, 3, angle))
    outer = regular_polygon(cx, cy, r, 5, angle)
    inner = regular_polygon(cx, cy, r * 0.45, 5, angle + np.pi / 5)
    star = np.stack([outer, inner], 1).reshape(-1, 2)
    return draw.polygon_mask(shape, star)


def regular_polygon(cx: float, cy: float, radius: float, sides: int, angle: float) -> np.ndarray:
    t = angle + 2 * np.pi * np.arange(sides) / sides
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], 1)


def object_texture(
    rng: np.random.Generator, shape: tuple[int, int], extent: float, kind: int | None = None
) -> np.ndarray:
    """A texture of ``shape`` for one object: a random colour with stripes (kind 0), speckle (1) or
    shading (2); ``kind`` None draws it (after the colour, so the shapes datasets keep their bytes)."""
    colour = rng.uniform(20, 235, size=3)
    if kind is None:
        kind = int(rng.integers(3))
    if kind == 0:  # stripes along a random direction
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        theta, period = rng.uniform(0, np.pi), rng.uniform(3, max(4.0, extent / 2))
        pattern = 20 * np.sin(2 * np.pi * (np.cos(theta) * xx + np.sin(theta) * yy) / period)
    elif kind == 1:  # speckle
        pattern = 15 * draw.smooth_noise(rng, shape, 1.0)
    else:  # shading
        pattern = 12 * draw.smooth_noise(rng, shape, max(2.0, extent / 4))
    return colour + pattern[..., None]
