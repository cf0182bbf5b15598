"""``cells``: Cell-Tracking-Challenge-format 2D frames with instance ground truth.

Cells are elliptical, irregular, often touching: every pixel inside at least one cell's (noise-perturbed)
ellipse belongs to the cell with the smallest normalised distance, so neighbours meet along a shared
boundary. ``modality`` chooses the look:

* ``phc`` (as PhC-C2DH-U373): dark-ish textured cell bodies on a grey background with bright halos just
  outside each cell and bright seams between touching cells;
* ``dic`` (as DIC-C2DH-HeLa): a relief image, the directional derivative of a smooth height map (cells
  and their nuclei as bumps), low contrast, densely packed elongated cells.

Frames are independent images named as in the CTC (3-digit frame index)::

    01/t000.tif ...            uint8 raw frames (single-page TIFF)
    01_GT/SEG/man_seg000.tif   uint16 instance labels, 0 = background, 1..n = cells
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from segbench.data.synthetic import _draw as draw

MODALITIES = ("phc", "dic")
MIN_CELL_AREA = 20
DEFAULTS: dict[str, Any] = {
    "modality": "phc",
    "sequences": ["01"],
    "frames": 20,
    "height": 256,
    "width": 256,
    "cells_per_frame": [8, 16],
    "cell_radius": [10, 26],
    "noise_std": 6.0,
}


def generate(out_dir: Path, params: dict[str, Any], seed: int) -> None:
    """Write the raw frames and SEG ground truth of every sequence under ``out_dir``."""
    p = {**DEFAULTS, **params}
    if p["modality"] not in MODALITIES:
        raise ValueError(f"cells: modality must be one of {MODALITIES}, got {p['modality']!r}")
    shape = (int(p["height"]), int(p["width"]))
    frames = int(p["frames"])
    for s, sequence in enumerate(p["sequences"]):
        for t in range(frames):
            rng = draw.item_rng(seed, f"cells_{p['modality']}", s * frames + t)
            labels = cell_labels(rng, shape, p)
            render = render_phc if p["modality"] == "phc" else render_dic
            image = render(rng, labels, float(p["noise_std"]))
            draw.write_tiff(out_dir / sequence / f"t{t:03d}.tif", image)
            draw.write_tiff(out_dir / f"{sequence}_GT" / "SEG" / f"man_seg{t:03d}.tif", labels)


def example_frame(seed: int = 0, **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """(image, uint16 instance labels) of the first frame ``generate`` would draw for ``seed`` and
    ``params`` (over :data:`DEFAULTS`), without writing files (figures and docs show it)."""
    p = {**DEFAULTS, **params}
    rng = draw.item_rng(seed, f"cells_{p['modality']}", 0)
    labels = cell_labels(rng, (int(p["height"]), int(p["width"])), p)
    render = render_phc if p["modality"] == "phc" else render_dic
    return render(rng, labels, float(p["noise_std"])), labels


def cell_labels(rng: np.random.Generator, shape: tuple[int, int], p: dict[str, Any]) -> np.ndarray:
    """A uint16 instance map of touching cells, labels 1..n without gaps."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    elongation = (1.0, 1.6) if p["modality"] == "phc" else (1.6, 3.0)
    lo, hi = p["cells_per_frame"]
    best = np.full(shape, np.inf)
    labels = np.zeros(shape, np.int32)
    # Clustered centres: cells touch, as in dense cultures.
    clusters = rng.uniform(0.15, 0.85, size=(int(rng.integers(2, 4)), 2)) * shape
    for k in range(1, int(rng.integers(lo, hi + 1)) + 1):
        centre = clusters[rng.integers(len(clusters))] + rng.normal(0, 0.18 * min(shape), 2)
        radius = rng.uniform(*p["cell_radius"])
        stretch = rng.uniform(*elongation)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - centre[0], xx - centre[1]
        c, s = np.cos(angle), np.sin(angle)
        u, v = (
            (c * dx + s * dy) / (radius * np.sqrt(stretch)),
            (-s * dx + c * dy) / (radius / np.sqrt(stretch)),
        )
        wobble = 0.12 * draw.smooth_noise(rng, shape, radius / 3)
        distance = np.sqrt(u**2 + v**2) + wobble
        take = (distance < 1.0) & (distance < best)
        best[take] = distance[take]
        labels[take] = k
    return tidy_labels(np.where(ndimage.binary_opening(labels > 0), labels, 0), min_area=MIN_CELL_AREA)


def tidy_labels(labels: np.ndarray, min_area: int) -> np.ndarray:
    """One label per connected piece (a cell cut in two by a neighbour becomes two), pieces smaller than
    ``min_area`` removed, labels renumbered 1..n in raster order."""
    from skimage.measure import label
    from skimage.segmentation import relabel_sequential

    pieces = label(labels, background=0, connectivity=1)
    areas = np.bincount(pieces.ravel())
    pieces[areas[pieces] < min_area] = 0
    return relabel_sequential(pieces)[0].astype(np.uint16)


def boundaries(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outer rim of the cells, seams between touching cells), as boolean maps."""
    from skimage.segmentation import find_boundaries

    seams = find_boundaries(labels, mode="inner") & ~find_boundaries(labels > 0, mode="inner")
    return labels > 0, seams


def render_phc(rng: np.random.Generator, labels: np.ndarray, noise_std: float) -> np.ndarray:
    """Phase-contrast look: dark textured cells, bright halo outside, bright seams between cells."""
    shape = labels.shape
    inside, seams = boundaries(labels)
    outside_distance = ndimage.distance_transform_edt(~inside)
    halo = 70 * np.exp(-outside_distance / 2.0) * ~inside
    level = rng.uniform(-15, 15, labels.max() + 1)
    image = 110 + 10 * draw.smooth_noise(rng, shape, 30.0)
    image = image + np.where(inside, -25 + level[labels] + 10 * draw.smooth_noise(rng, shape, 2.0), 0) + halo
    image = image + 40 * ndimage.gaussian_filter(seams.astype(float), 0.7)
    image = ndimage.gaussian_filter(image, 1.0) + rng.normal(0, noise_std, shape)
    return draw.to_uint8(image)


def render_dic(rng: np.random.Generator, labels: np.ndarray, noise_std: float) -> np.ndarray:
    """DIC look: shear-direction derivative of a height map of cells (and nuclei), low contrast."""
    shape = labels.shape
    inside, seams = boundaries(labels)
    height = ndimage.gaussian_filter(inside.astype(float) - 0.6 * seams, 2.0)
    for k in range(1, int(labels.max()) + 1):  # a nucleus bump near each cell's centroid
        ys, xs = np.nonzero(labels == k)
        radius = 0.35 * np.sqrt(len(ys) / np.pi)
        cy, cx = ys.mean() + rng.normal(0, 2), xs.mean() + rng.normal(0, 2)
        height += 0.5 * draw.ellipse_mask(shape, cx, cy, radius, radius * rng.uniform(0.7, 1.0))
    height = ndimage.gaussian_filter(height, 1.5) + 0.05 * draw.smooth_noise(rng, shape, 3.0)
    theta = rng.uniform(0, 2 * np.pi)
    relief = np.cos(theta) * ndimage.sobel(height, 1) + np.sin(theta) * ndimage.sobel(height, 0)
    image = 128 + 60 * relief + 6 * draw.smooth_noise(rng, shape, 40.0)
    image += rng.normal(0, noise_std, shape)
    return draw.to_uint8(image)
