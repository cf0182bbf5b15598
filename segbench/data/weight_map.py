"""The U-Net loss weight map (Ronneberger et al. 2015, section 3, equation 2 and Figure 3c-d).

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

w_c balances the class frequencies of one ground truth (inverse frequency, mean 1 over the image);
d1, d2 are the Euclidean distances to the nearest and the second-nearest cell. The border term is added on
background pixels only (inside a cell d1 = 0 and the term would only reward the cell body next to a
neighbour; Figure 3d shows it on the gaps). Touching cells are first separated by a morphological border:
cell pixels 4-adjacent to another cell become background (Figure 3c), which is exactly what is needed for
the 4-connected components of the thresholded output to come apart; labels already separated (ISBI cells
are the 4-connected components of the cell class) are left unchanged.

Distances use one exact Euclidean distance transform per cell, computed in the cell's bounding box grown
by ``cutoff``: outside that window d_i > cutoff, where w0 * exp(-cutoff^2 / (2 sigma^2)) <= ``tolerance``,
so the result equals the per-cell full-image transform to within ``tolerance``.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path

import numpy as np
from scipy import ndimage

from segbench.errors import InputError
from segbench.io import write_with

PAPER_W0 = 10.0
PAPER_SIGMA_PX = 5.0
FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def instances_from_binary(cell_mask: np.ndarray) -> np.ndarray:
    """Instance labels of a binary cell mask (e.g. ISBI labels == 255): 4-connected components."""
    labels, _ = ndimage.label(cell_mask, structure=FOUR_CONNECTED)
    return labels.astype(np.int32)


def separation_border(instances: np.ndarray) -> np.ndarray:
    """Cell pixels 4-adjacent to a different cell (the borders between touching cells)."""
    largest = np.iinfo(instances.dtype).max
    grey_max = ndimage.maximum_filter(instances, footprint=FOUR_CONNECTED, mode="constant", cval=0)
    masked = np.where(instances > 0, instances, largest)
    grey_min = ndimage.minimum_filter(masked, footprint=FOUR_CONNECTED, mode="constant", cval=largest)
    return (instances > 0) & ((grey_max != instances) | (grey_min != instances))


def separate_touching(instances: np.ndarray) -> np.ndarray:
    """Instance labels with the separation borders set to background (0)."""
    return np.where(separation_border(instances), 0, instances).astype(instances.dtype, copy=False)


def class_balance_weights(target: np.ndarray) -> np.ndarray:
    """w_c: weight N / (K * n_k) for a pixel of class k (K classes present), so the image mean is 1."""
    classes, counts = np.unique(target, return_counts=True)
    per_class = target.size / (len(classes) * counts)
    return per_class[np.searchsorted(classes, target)].astype(np.float32)


def two_nearest_cell_distances(instances: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """d1, d2: distances from every pixel to its nearest and second-nearest cell (inf beyond ``cutoff``)."""
    d1 = np.full(instances.shape, np.inf)
    d2 = np.full(instances.shape, np.inf)
    margin = int(math.ceil(cutoff)) + 1
    for index, bbox in enumerate(ndimage.find_objects(instances), start=1):
        if bbox is None:
            continue
        window = tuple(
            slice(max(0, s.start - margin), min(n, s.stop + margin))
            for s, n in zip(bbox, instances.shape, strict=True)
        )
        distance = ndimage.distance_transform_edt(instances[window] != index)
        near, second = d1[window], d2[window]
        d2[window] = np.where(distance < near, near, np.minimum(second, distance))
        d1[window] = np.minimum(near, distance)
    return d1, d2


def unet_weight_map(
    instances: np.ndarray, w0: float = PAPER_W0, sigma: float = PAPER_SIGMA_PX, tolerance: float = 1e-6
) -> np.ndarray:
    """Equation 2 for one 2-D instance label image (0 = background); returns float32 weights."""
    if instances.ndim != 2:
        raise InputError(f"unet_weight_map: expected a 2-D instance label image, got shape {instances.shape}")
    separated = separate_touching(instances.astype(np.int32, copy=False))
    target = (separated > 0).astype(np.uint8)
    weights = class_balance_weights(target)
    if w0 <= 0 or separated.max() < 2:
        return weights
    cutoff = sigma * math.sqrt(2.0 * math.log(w0 / tolerance)) if w0 > tolerance else 0.0
    d1, d2 = two_nearest_cell_distances(separated, cutoff)
    border = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))  # exp(-inf) = 0 where d2 is beyond cutoff
    return (weights + np.where(target == 0, border, 0.0)).astype(np.float32)


def training_target(instances: np.ndarray) -> np.ndarray:
    """The binary segmentation mask the network learns (Figure 3c): 1 = cell, 0 = background and borders."""
    return (separate_touching(instances.astype(np.int32, copy=False)) > 0).astype(np.int64)


@functools.lru_cache(maxsize=256)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file (memoised per path, modification time and size)."""
    stat = Path(path).stat()
    return _sha256(Path(path).resolve(), stat.st_mtime_ns, stat.st_size)


def cached_weight_map(
    label_file: Path,
    index: int,
    instances: np.ndarray,
    cache_dir: Path,
    w0: float = PAPER_W0,
    sigma: float = PAPER_SIGMA_PX,
) -> np.ndarray:
    """The weight map of slice ``index`` of ``label_file`` (whose instances are given), cached as ``.npy``
    in ``cache_dir`` under the file's sha256, the slice and the parameters (recomputed if any changes)."""
    key = f"{file_sha256(label_file)[:32]}_{index:05d}_w0-{w0:g}_sigma-{sigma:g}"
    path = Path(cache_dir) / f"weight_map_{key}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == instances.shape:
                return cached
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed below
    weights = unet_weight_map(instances, w0=w0, sigma=sigma)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save on a path would append ".npy"
            np.save(fh, weights, allow_pickle=False)

    write_with(path, write, "weight map")
    return weights
