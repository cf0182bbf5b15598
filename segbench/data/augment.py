"""U-Net training augmentation (Ronneberger et al. 2015, section 3.1).

Smooth elastic deformations from random displacement vectors on a coarse 3 x 3 grid (Gaussian, 10 px
standard deviation), interpolated to per-pixel displacements with bicubic splines; plus shifts, rotations,
flips and grey-value variation. One sampling field moves the image (cubic), the labels (nearest: binary
labels stay binary, instance ids stay a subset) and the weight map (linear) together. Samples outside the
image are mirror-extrapolated, as in the overlap-tile strategy (Figure 2). Everything is drawn from the
``numpy.random.Generator`` passed in, so a seed (or a per-iteration generator) reproduces a sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentParams:
    """What to randomise. The defaults are the paper's: elastic 3x3 grid, 10 px std, all rigid motions."""

    elastic: bool = True
    grid: int = 3
    std_px: float = 10.0
    rotate: bool = True  # uniform angle in [0, 360) degrees
    flip: bool = True  # mirror the x axis with probability 1/2
    shift: bool = True  # tile centre uniform over the image
    grey_gain: float = 0.1  # intensity x U(1 - gain, 1 + gain)
    grey_offset: float = 0.1  # intensity + U(-offset, offset) (images normalised to about [0, 1])

    @classmethod
    def none(cls) -> AugmentParams:
        """No augmentation at all (identity sampling)."""
        return cls(elastic=False, rotate=False, flip=False, shift=False, grey_gain=0.0, grey_offset=0.0)


def elastic_displacement(
    rng: np.random.Generator, shape: tuple[int, int], grid: int = 3, std_px: float = 10.0
) -> np.ndarray:
    """A 2 x H x W displacement field: Gaussian vectors on a ``grid`` x ``grid`` lattice spanning the tile,
    upsampled by bicubic spline interpolation (section 3.1)."""
    coarse = rng.normal(0.0, std_px, size=(2, grid, grid))
    rows, cols = (cubic_upsampling_matrix(grid, n) for n in shape)
    return np.einsum("hi,cij,wj->chw", rows, coarse, cols)


def cubic_upsampling_matrix(nodes: int, size: int) -> np.ndarray:
    """``size`` x ``nodes`` matrix of ``scipy.ndimage.zoom(order=3, grid_mode=False)`` along one axis (the
    outer nodes land on the first and last pixel). Cubic spline zoom is linear and separable, so the 2-D
    field is rows @ coarse @ cols.T: the numbers of zooming the lattice, without a 2-D spline per tile."""
    return ndimage.zoom(np.eye(nodes), (size / nodes, 1.0), order=3, mode="nearest", grid_mode=False)


def sample_coordinates(
    rng: np.random.Generator, tile: tuple[int, int], image_shape: tuple[int, int], params: AugmentParams
) -> np.ndarray:
    """Source coordinates (2 x h x w) of every pixel of a ``tile``-sized training sample of an image."""
    rows, cols = (np.arange(n, dtype=np.float64) - (n - 1) / 2.0 for n in tile)
    y, x = np.meshgrid(rows, cols, indexing="ij")
    if params.flip and rng.random() < 0.5:
        x = -x
    if params.rotate:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        cos, sin = np.cos(angle), np.sin(angle)
        y, x = cos * y - sin * x, sin * y + cos * x
    if params.shift:
        centre = (rng.uniform(0, image_shape[0] - 1), rng.uniform(0, image_shape[1] - 1))
    else:
        centre = ((image_shape[0] - 1) / 2.0, (image_shape[1] - 1) / 2.0)
    coords = np.stack([y + centre[0], x + centre[1]])
    if params.elastic and params.std_px > 0:
        coords += elastic_displacement(rng, tile, params.grid, params.std_px)
    return coords


def warp(array: np.ndarray, coords: np.ndarray, order: int) -> np.ndarray:
    """Sample a 2-D array at ``coords`` with spline ``order`` (0 = nearest), mirroring outside the image."""
    return ndimage.map_coordinates(
        array, coords, order=order, mode="mirror", output=array.dtype if order == 0 else np.float32
    )


def center_crop_field(coords: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    top = (coords.shape[1] - size[0]) // 2
    left = (coords.shape[2] - size[1]) // 2
    return coords[:, top : top + size[0], left : left + size[1]]


def augment_tile(
    rng: np.random.Generator,
    image: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    input_tile: tuple[int, int],
    output_tile: tuple[int, int] | None = None,
    params: AugmentParams | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training sample: an ``input_tile`` image and the ``output_tile`` labels and weights at its centre
    (the valid output of the unpadded U-Net; ``None`` = the input size), all under the same deformation."""
    params = params or AugmentParams()
    if not (image.shape == labels.shape == weights.shape):
        raise ValueError(f"image {image.shape}, labels {labels.shape}, weights {weights.shape} differ")
    coords = sample_coordinates(rng, input_tile, image.shape, params)
    inner = center_crop_field(coords, output_tile or input_tile)
    out_image = warp(image.astype(np.float32, copy=False), coords, order=3)
    if params.grey_gain or params.grey_offset:
        gain = rng.uniform(1.0 - params.grey_gain, 1.0 + params.grey_gain)
        offset = rng.uniform(-params.grey_offset, params.grey_offset)
        out_image = (out_image * gain + offset).astype(np.float32)
    out_weights = warp(weights.astype(np.float32, copy=False), inner, order=1)
    return out_image, warp(labels, inner, order=0), out_weights
