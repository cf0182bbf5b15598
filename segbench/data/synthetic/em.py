"""``em``: ISBI-2012-format serial-section EM stacks of a synthetic cell tessellation.

Cells are the Voronoi regions of jittered seeds, with boundaries bent by a smooth displacement field and
seeds drifting from slice to slice (as neurites do through serial sections). Membranes are 1-3 px dark
lines between regions; the image adds per-cell grey levels, cytoplasm texture, dark organelles and
vesicles *inside* cells, faint membrane stretches, blur and noise, so that a smoothed intensity
threshold is clearly imperfect. Files, as the challenge's (ImageJ multi-page TIFF, axes ZYX)::

    train-volume.tif   uint8  N x H x W   raw intensities
    train-labels.tif   uint8  N x H x W   255 = cell (non-membrane), 0 = membrane
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from segbench.data.synthetic import _draw as draw

DEFAULTS: dict[str, Any] = {
    "slices": 20,
    "height": 256,
    "width": 256,
    "cell_spacing": 28.0,
    "noise_std": 14.0,
}


def generate(out_dir: Path, params: dict[str, Any], seed: int) -> None:
    """Write ``train-volume.tif`` and ``train-labels.tif`` under ``out_dir``."""
    volume, labels = draw_stack(params, seed, "volume")
    draw.write_tiff(out_dir / "train-volume.tif", volume, imagej_zyx=True)
    draw.write_tiff(out_dir / "train-labels.tif", labels, imagej_zyx=True)


def draw_stack(params: dict[str, Any], seed: int, stream: str) -> tuple[np.ndarray, np.ndarray]:
    """(volume, labels), uint8 N x H x W, drawn from the random stream ``stream`` ("volume": the training
    stack that :func:`generate` writes)."""
    p = {**DEFAULTS, **params}
    shape = (int(p["height"]), int(p["width"]))
    seeds = initial_seeds(draw.item_rng(seed, stream, 0), shape, float(p["cell_spacing"]))
    volume, labels = [], []
    for z in range(int(p["slices"])):
        rng = draw.item_rng(seed, stream, z + 1)
        seeds = seeds + rng.normal(0.0, 0.08 * float(p["cell_spacing"]), seeds.shape)  # drift per section
        regions = bent_voronoi(rng, shape, seeds, float(p["cell_spacing"]))
        membrane = membrane_mask(rng, regions)
        volume.append(render_slice(rng, regions, membrane, float(p["noise_std"])))
        labels.append(np.where(membrane, 0, 255).astype(np.uint8))
    return np.stack(volume), np.stack(labels)


def stand_in_test_volume(params: dict[str, Any], seed: int) -> np.ndarray:
    """A stand-in for the challenge's unlabelled test stack (``test-volume.tif``): as many slices as the
    training stack, drawn like it from a separate random stream ("test"), so no slice is a training one."""
    return draw_stack(params, seed, "test")[0]


def example_slice(size: int, seed: int = 0) -> np.ndarray:
    """One ``size x size`` uint8 EM slice at the default spacing and noise: the first slice ``generate``
    would draw for ``seed`` at that size (figures and docs show it; no files are written)."""
    spacing = float(DEFAULTS["cell_spacing"])
    shape = (size, size)
    rng = draw.item_rng(seed, "volume", 1)
    seeds = initial_seeds(draw.item_rng(seed, "volume", 0), shape, spacing)
    regions = bent_voronoi(rng, shape, seeds, spacing)
    membrane = membrane_mask(rng, regions)
    return render_slice(rng, regions, membrane, float(DEFAULTS["noise_std"]))


def initial_seeds(rng: np.random.Generator, shape: tuple[int, int], spacing: float) -> np.ndarray:
    """Seeds (y, x) on a jittered grid covering the image plus a margin, so no border cell is huge."""
    ys = np.arange(-spacing, shape[0] + spacing, spacing)
    xs = np.arange(-spacing, shape[1] + spacing, spacing)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    return grid + rng.uniform(-0.4, 0.4, grid.shape) * spacing


def bent_voronoi(
    rng: np.random.Generator, shape: tuple[int, int], seeds: np.ndarray, spacing: float
) -> np.ndarray:
    """Region index of every pixel: the nearest seed after a smooth warp of the pixel grid."""
    from scipy.spatial import cKDTree

    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    amplitude = 0.25 * spacing
    yy += amplitude * draw.smooth_noise(rng, shape, spacing / 2)
    xx += amplitude * draw.smooth_noise(rng, shape, spacing / 2)
    _, nearest = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1))
    return nearest.reshape(shape).astype(np.int32)


def membrane_mask(rng: np.random.Generator, regions: np.ndarray) -> np.ndarray:
    """Pixels on a region boundary, thickened to 1-3 px by a smooth random thickness field."""
    edge = np.zeros(regions.shape, bool)
    edge[:-1] |= regions[:-1] != regions[1:]
    edge[:, :-1] |= regions[:, :-1] != regions[:, 1:]
    thickness = draw.smooth_noise(rng, regions.shape, 12.0)
    thick = ndimage.binary_dilation(edge) & (thickness > -0.3)
    thicker = ndimage.binary_dilation(edge, iterations=2) & (thickness > 1.0)
    return edge | thick | thicker


def render_slice(
    rng: np.random.Generator, regions: np.ndarray, membrane: np.ndarray, noise_std: float
) -> np.ndarray:
    """The EM-like grey image of one section."""
    shape = regions.shape
    cell_level = rng.uniform(150, 205, regions.max() + 1)
    image = (
        cell_level[regions]
        + 12 * draw.smooth_noise(rng, shape, 2.0)
        + 8 * draw.smooth_noise(rng, shape, 10.0)
    )
    image += organelles(rng, shape, membrane)
    faint = draw.smooth_noise(rng, shape, 8.0) > 1.0  # membrane stretches cut obliquely: low contrast
    depth = np.where(faint, rng.uniform(15, 35), rng.uniform(85, 115))
    image = np.where(membrane, image - depth, image)
    image = ndimage.gaussian_filter(image, 1.0)
    image += rng.normal(0.0, noise_std, shape)
    return draw.to_uint8(image)


def organelles(rng: np.random.Generator, shape: tuple[int, int], membrane: np.ndarray) -> np.ndarray:
    """Dark mitochondria-like ellipses and small vesicles away from membranes (intensity offsets)."""
    offset = np.zeros(shape)
    interior = ndimage.distance_transform_edt(~membrane)
    count = int(shape[0] * shape[1] / 500)
    for _ in range(count):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        big = rng.random() < 0.35
        rx = rng.uniform(2.5, 6) if big else rng.uniform(1, 2.5)
        ry = rx * (rng.uniform(0.4, 0.8) if big else 1.0)
        if interior[min(int(cy), shape[0] - 1), min(int(cx), shape[1] - 1)] < max(rx, ry) + 1:
            continue
        blob = draw.ellipse_mask(shape, cx, cy, rx, ry, rng.uniform(0, np.pi))
        offset[blob] -= rng.uniform(50, 100) if big else rng.uniform(30, 70)
    return offset
