"""Overlap-tile inference (Ronneberger et al. 2015, section 1 and Figure 2) with dihedral test-time averaging.

The image is mirror-padded by the network's context border; input tiles of ``input_tile`` pixels are cut at
offsets that are multiples of both the output stride and 2**depth, and each tile's output is pasted in place.
Offsets at multiples of 2**depth keep every 2x2 max pool on the same pixel grid as whole-image inference, so
the tiled result equals the whole-image result exactly (the "seamless segmentation" of Figure 2). The valid
output of an input tile (388 for 572) is therefore used up to the largest multiple of 2**depth (384).

Test-time augmentation: the paper averages "over 7 rotated versions of the input data" (section 4). On a
square pixel grid the only rotations and reflections that need no interpolation are the 8 elements of the
dihedral group D4; we read the paper as the identity plus its 7 other elements, i.e. all 8 (``num_extra=7``,
the registry's ``test_time_rotations: 7``). Any prefix of the fixed order below can be chosen instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from segbench.errors import InputError
from segbench.models.unet import valid_output_size


@dataclass(frozen=True)
class Dihedral:
    """x -> rot90^k(flip?(x)) on the last two axes; ``invert`` undoes it."""

    quarter_turns: int
    flip: bool

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flip(x, dims=(-1,)) if self.flip else x
        return torch.rot90(x, self.quarter_turns, dims=(-2, -1))

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.rot90(x, -self.quarter_turns, dims=(-2, -1))
        return torch.flip(x, dims=(-1,)) if self.flip else x


DIHEDRAL_GROUP = tuple(Dihedral(k, flip) for flip in (False, True) for k in range(4))


def dihedral_versions(num_extra: int) -> tuple[Dihedral, ...]:
    """The identity plus the first ``num_extra`` (0..7) other dihedral transforms."""
    if not 0 <= num_extra <= 7:
        raise InputError(
            f"test_time_rotations={num_extra}: expected 0..7 extra dihedral versions (7 = all 8)"
        )
    return DIHEDRAL_GROUP[: num_extra + 1]


@dataclass(frozen=True)
class TileGeometry:
    """``input_tile`` -> ``output_size`` valid pixels, of which the first ``stride`` are kept per tile."""

    input_tile: int
    output_size: int
    stride: int

    @property
    def border(self) -> int:
        """Context on each side of the output: the blue-minus-yellow margin of Figure 2."""
        return (self.input_tile - self.output_size) // 2

    @classmethod
    def for_model(cls, model: nn.Module, input_tile: int) -> TileGeometry:
        output_size = model.output_size(input_tile)
        multiple = model.size_multiple
        if getattr(model, "padding", False):
            # Padded convolutions see zeros at tile edges: keep the centre with the unpadded net's context.
            output_size = valid_output_size(input_tile, model.depth)
        stride = (output_size // multiple) * multiple
        if stride == 0:
            raise InputError(
                f"input tile {input_tile}: yields {output_size} output pixels, fewer than the "
                f"tiling step {multiple}; use a larger tile"
            )
        return cls(input_tile, output_size, stride)


def predict_tiled(
    model: nn.Module,
    image: np.ndarray,
    input_tile: int,
    *,
    transforms: Sequence[Dihedral] = DIHEDRAL_GROUP[:1],
    batch_tiles: int = 4,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Class probabilities (C x H x W, float32) of a 2-D or C_in x H x W image of any size.

    Each transform is applied to the whole padded image, tiled, and inverted; the softmax outputs are
    averaged over ``transforms``. ``model`` must be in eval mode and expose ``output_size``/``size_multiple``
    (see :class:`segbench.models.unet.UNet`)."""
    planes = image[None] if image.ndim == 2 else image
    if planes.ndim != 3:
        raise InputError(f"predict_tiled: expected an H x W or C x H x W image, got shape {image.shape}")
    geometry = TileGeometry.for_model(model, input_tile)
    height, width = planes.shape[-2:]
    total = None
    for transform in transforms:
        turned = transform.apply(torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32)))
        probs = transform.invert(_tile_and_stitch(model, turned.numpy(), geometry, batch_tiles, device))
        total = probs if total is None else total + probs
    return (total / len(transforms)).numpy()[:, :height, :width]


def _tile_and_stitch(
    model: nn.Module, planes: np.ndarray, geometry: TileGeometry, batch_tiles: int, device: str | torch.device
) -> torch.Tensor:
    height, width = planes.shape[-2:]
    rows, cols = math.ceil(height / geometry.stride), math.ceil(width / geometry.stride)
    border = geometry.border
    crop = (model.output_size(geometry.input_tile) - geometry.output_size) // 2  # > 0 for padded nets only
    pad_after = [
        (n - 1) * geometry.stride + geometry.input_tile - border - size
        for n, size in ((rows, height), (cols, width))
    ]
    padded = np.pad(planes, ((0, 0), (border, pad_after[0]), (border, pad_after[1])), mode="reflect")
    offsets = [(r * geometry.stride, c * geometry.stride) for r in range(rows) for c in range(cols)]
    stitched: torch.Tensor | None = None
    for start in range(0, len(offsets), batch_tiles):
        chunk = offsets[start : start + batch_tiles]
        tiles = np.stack(
            [padded[:, y : y + geometry.input_tile, x : x + geometry.input_tile] for y, x in chunk]
        )
        probs = _forward(model, torch.from_numpy(tiles), device)
        if stitched is None:
            stitched = torch.empty(probs.shape[1], rows * geometry.stride, cols * geometry.stride)
        for (y, x), tile_probs in zip(chunk, probs, strict=True):
            stitched[:, y : y + geometry.stride, x : x + geometry.stride] = tile_probs[
                :, crop : crop + geometry.stride, crop : crop + geometry.stride
            ]
    assert stitched is not None
    return stitched[:, :height, :width]


def _forward(model: nn.Module, tiles: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    with torch.inference_mode():
        return torch.softmax(model(tiles.to(device)), dim=1).float().cpu()


ProbabilityFn = Callable[[np.ndarray], np.ndarray]


def cell_probability_fn(
    model: nn.Module,
    input_tile: int,
    *,
    test_time_rotations: int = 0,
    batch_tiles: int = 4,
    device: str | torch.device = "cpu",
) -> ProbabilityFn:
    """image (H x W) -> P(cell) (H x W, float32 in [0, 1]): channel 1 of the tiled, averaged softmax."""
    transforms = dihedral_versions(test_time_rotations)

    def predict(image: np.ndarray) -> np.ndarray:
        return predict_tiled(
            model, image, input_tile, transforms=transforms, batch_tiles=batch_tiles, device=device
        )[1]

    return predict
