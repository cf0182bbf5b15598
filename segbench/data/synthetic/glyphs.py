"""``glyphs``: ImageNet in miniature, the classification corpus the mini backbones are pretrained on.

He et al. 2017 fine-tune ImageNet-pretrained backbones (section 3.1); the CPU scales cannot, so each mini
backbone is first pretrained on this corpus (:mod:`segbench.engine.pretrain`). One class is a (shape,
texture) pair: 15 shapes, among them the five of the ``shapes`` detection set and ten others, times three
textures (stripes, speckle, shading), 45 classes. Each image shows one object of its class, large and
near the centre, over a textured background with up to three smaller distractor objects of any class
(clutter). Images are drawn from their own random stream (``glyphs_train`` / ``glyphs_val``), never from
the detection sets' images. Rendering is a pure function of ``(seed, split, index)``, so the corpus is
regenerated in memory rather than stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from segbench.data.synthetic import _draw as draw
from segbench.data.synthetic.shapes import object_texture, regular_polygon

SHAPES = (
    "circle",
    "square",
    "triangle",
    "ellipse",
    "star",
    "pentagon",
    "hexagon",
    "diamond",
    "bar",
    "cross",
    "ring",
    "crescent",
    "semicircle",
    "star4",
    "star6",
)
TEXTURES = ("stripes", "speckle", "shading")
CLASSES = tuple(f"{shape}/{texture}" for shape in SHAPES for texture in TEXTURES)

DEFAULTS: dict[str, Any] = {
    "image_size": 64,
    "object_size": [22, 56],  # the class object's extent (px), log-uniform
    "distractors": [0, 3],
    "distractor_size": [6, 20],
    "noise_std": 6.0,
}
STREAM_OFFSET = {"train": 101, "val": 102}


def _star(cx: float, cy: float, r: float, points: int, inner: float, angle: float) -> np.ndarray:
    outer = regular_polygon(cx, cy, r, points, angle)
    inside = regular_polygon(cx, cy, r * inner, points, angle + np.pi / points)
    return np.stack([outer, inside], 1).reshape(-1, 2)


def _rotated(cx: float, cy: float, xy: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * xy[:, 0] - s * xy[:, 1], cy + s * xy[:, 0] + c * xy[:, 1]], 1)


def glyph_mask(size: int, shape: str, cx: float, cy: float, extent: float, angle: float) -> np.ndarray:
    """Mask of one glyph whose unrotated bounding box is about ``extent`` pixels across."""
    grid = (size, size)
    r = extent / 2
    polygons = {
        "square": lambda: regular_polygon(cx, cy, r * np.sqrt(2) * 0.75, 4, angle),
        "triangle": lambda: regular_polygon(cx, cy, r, 3, angle),
        "pentagon": lambda: regular_polygon(cx, cy, r, 5, angle),
        "hexagon": lambda: regular_polygon(cx, cy, r, 6, angle),
        "star": lambda: _star(cx, cy, r, 5, 0.45, angle),
        "star4": lambda: _star(cx, cy, r, 4, 0.35, angle),
        "star6": lambda: _star(cx, cy, r, 6, 0.6, angle),
        "diamond": lambda: _rotated(
            cx, cy, np.array([[r, 0], [0, 0.55 * r], [-r, 0], [0, -0.55 * r]]), angle
        ),
        "bar": lambda: _rotated(
            cx, cy, np.array([[r, 0.25 * r], [-r, 0.25 * r], [-r, -0.25 * r], [r, -0.25 * r]]), angle
        ),
    }
    if shape in polygons:
        return draw.polygon_mask(grid, polygons[shape]())
    if shape == "circle":
        return draw.ellipse_mask(grid, cx, cy, r, r)
    if shape == "ellipse":
        return draw.ellipse_mask(grid, cx, cy, r, 0.5 * r, angle)
    if shape == "cross":
        arm = np.array([[r, 0.22 * r], [-r, 0.22 * r], [-r, -0.22 * r], [r, -0.22 * r]])
        return draw.polygon_mask(grid, _rotated(cx, cy, arm, angle)) | draw.polygon_mask(
            grid, _rotated(cx, cy, arm, angle + np.pi / 2)
        )
    if shape == "ring":
        return draw.ellipse_mask(grid, cx, cy, r, r) & ~draw.ellipse_mask(grid, cx, cy, 0.55 * r, 0.55 * r)
    if shape == "crescent":
        dx, dy = 0.45 * r * np.cos(angle), 0.45 * r * np.sin(angle)
        return draw.ellipse_mask(grid, cx, cy, r, r) & ~draw.ellipse_mask(
            grid, cx + dx, cy + dy, 0.8 * r, 0.8 * r
        )
    if shape == "semicircle":
        yy, xx = np.mgrid[:size, :size]
        side = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle) >= 0
        return draw.ellipse_mask(grid, cx, cy, r, r) & side
    raise ValueError(f"unknown glyph shape {shape!r}")


def _paint(
    image: np.ndarray, rng: np.random.Generator, label: int, extent: float, cx: float, cy: float
) -> None:
    shape, texture = divmod(label, len(TEXTURES))
    mask = glyph_mask(image.shape[0], SHAPES[shape], cx, cy, extent, rng.uniform(0, 2 * np.pi))
    if not mask.any():
        return
    window = ndimage.find_objects(mask.astype(np.uint8))[0]
    inside = mask[window]
    colours = object_texture(rng, inside.shape, extent, texture)[inside]
    background = image[window][inside].mean(axis=0)
    offset = colours.mean(axis=0) - background
    if np.linalg.norm(offset) < 50:  # keep the object visible against what it covers (as shapes_mini)
        direction = offset / max(np.linalg.norm(offset), 1e-6)
        colours = colours + direction * (50 - np.linalg.norm(offset))
    image[window][inside] = colours


def render(rng: np.random.Generator, params: dict[str, Any]) -> tuple[np.ndarray, int]:
    """One ``(image uint8 H x W x 3, class index)``: distractors first, the class object on top."""
    p = {**DEFAULTS, **params}
    size = int(p["image_size"])
    image = draw.textured_background(rng, size)
    label = int(rng.integers(len(CLASSES)))
    lo, hi = p["distractors"]
    for _ in range(int(rng.integers(lo, hi + 1))):
        extent = float(np.exp(rng.uniform(*np.log(p["distractor_size"]))))
        cx, cy = rng.uniform(0.05, 0.95, size=2) * size
        _paint(image, rng, int(rng.integers(len(CLASSES))), extent, cx, cy)
    extent = float(np.exp(rng.uniform(*np.log(p["object_size"]))))
    cx, cy = size / 2 + rng.uniform(-0.15, 0.15, size=2) * size
    _paint(image, rng, label, extent, cx, cy)
    image = ndimage.gaussian_filter(image, sigma=(0.6, 0.6, 0))
    image += rng.normal(0.0, float(p["noise_std"]), image.shape)
    return draw.to_uint8(image), label


def corpus(params: dict[str, Any], seed: int, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images (N x H x W x 3 uint8) and labels (N int64) of ``split`` ("train" or "val")."""
    size = int({**DEFAULTS, **params}["image_size"])
    images = np.empty((count, size, size, 3), np.uint8)
    labels = np.empty(count, np.int64)
    for index in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), STREAM_OFFSET[split], index]))
        images[index], labels[index] = render(rng, params)
    return images, labels
