"""Drawing, noise and byte-stable writers shared by the synthetic generators.

Every random draw goes through :func:`item_rng`, a generator seeded from ``(seed, stream, index)``, so an
image depends only on the dataset seed and its own position: the same seed gives the same bytes, and
growing a split does not change the images already in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

from segbench.io import dumps

# Stream ids keep the random streams of different splits/sequences apart.
STREAMS = {"train": 1, "val": 2, "test": 3, "volume": 4, "cells_phc": 5, "cells_dic": 6}


def item_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The random generator of one item (an image, a slice, a frame) of a dataset."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[stream], int(index)]))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to zero mean and unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    std = field.std()
    return (field - field.mean()) / (std if std > 0 else 1.0)


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth coloured field with a gradient and mid-frequency clutter (float RGB, 0..255)."""
    base = rng.uniform(40, 215, size=3)
    yy, xx = np.mgrid[:size, :size] / size
    gradient = rng.uniform(-40, 40) * (xx - 0.5) + rng.uniform(-40, 40) * (yy - 0.5)
    coarse = smooth_noise(rng, (size, size), size / 10)
    fine = smooth_noise(rng, (size, size), 1.5)
    tint = rng.uniform(-1, 1, size=3)
    return (base + (gradient + 18 * coarse + 8 * fine)[..., None] * (1 + 0.3 * tint)).astype(np.float64)


def polygon_mask(shape: tuple[int, int], xy: np.ndarray) -> np.ndarray:
    """Boolean mask of the polygon with vertices ``xy`` (N x 2, pixel-centre coordinates x, y)."""
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    rr, cc = polygon(xy[:, 1], xy[:, 0], shape=shape)
    mask[rr, cc] = True
    return mask


def ellipse_mask(
    shape: tuple[int, int], cx: float, cy: float, rx: float, ry: float, angle: float = 0.0
) -> np.ndarray:
    """Boolean mask of an ellipse with semi-axes ``rx``, ``ry`` rotated by ``angle`` radians."""
    rx, ry = max(rx, 0.5), max(ry, 0.5)
    mask = np.zeros(shape, bool)
    window = _window(shape, cx, cy, cx, cy, max(rx, ry))
    if window is None:
        return mask
    yy, xx = window
    dx, dy = xx - cx, yy - cy
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    mask[yy, xx] = (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
    return mask


def capsule_mask(shape: tuple[int, int], p0: np.ndarray, p1: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of the points within ``radius`` of the segment ``p0``-``p1`` (a limb)."""
    mask = np.zeros(shape, bool)
    window = _window(shape, p0[0], p0[1], p1[0], p1[1], radius)
    if window is None:
        return mask
    yy, xx = window
    d = p1 - p0
    length2 = float(d @ d) or 1e-9
    t = np.clip(((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / length2, 0.0, 1.0)
    mask[yy, xx] = (xx - p0[0] - t * d[0]) ** 2 + (yy - p0[1] - t * d[1]) ** 2 <= radius**2
    return mask


def _window(
    shape: tuple[int, int], x0: float, y0: float, x1: float, y1: float, margin: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Open-mesh pixel coordinates (rows, columns) of the box around two points, clipped to ``shape``."""
    top, bottom = (
        max(int(np.floor(min(y0, y1) - margin)), 0),
        min(int(np.ceil(max(y0, y1) + margin)) + 1, shape[0]),
    )
    left, right = (
        max(int(np.floor(min(x0, x1) - margin)), 0),
        min(int(np.ceil(max(x0, x1) + margin)) + 1, shape[1]),
    )
    if top >= bottom or left >= right:
        return None
    return np.ix_(np.arange(top, bottom), np.arange(left, right))


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an 8-bit grey or RGB PNG with fixed settings and no metadata chunks (byte-stable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):
        Image.fromarray(image).save(path, format="PNG", compress_level=6, optimize=False)


def write_tiff(path: Path, array: np.ndarray, *, imagej_zyx: bool = False) -> None:
    """Write an uncompressed TIFF without timestamps: an ImageJ ZYX stack (as the ISBI 2012 files) or a
    single plain page (as the Cell Tracking Challenge files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):
        if imagej_zyx:
            tifffile.imwrite(path, array, imagej=True, metadata={"axes": "ZYX"})
        else:
            tifffile.imwrite(path, array, photometric="minisblack", metadata=None)


def write_json(path: Path, obj: Any) -> None:
    """Compact, key-sorted JSON (byte-stable for the same content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):
        path.write_text(dumps(obj, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """An ``OSError`` without a file name (a full disk while PIL or tifffile writes) gets ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
