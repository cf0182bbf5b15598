"""``res_unet``: a U-Net whose double convolutions are residual blocks, with the unpadded U-Net's geometry.

Each block is two unpadded 3x3 convolutions plus a 1x1 projection of its input, centre-cropped by the 2
pixels per side that the convolutions lose (He et al., CVPR 2016, adapted to valid convolutions). Depth,
widths (``model.base_channels`` doubling per level), pooling, up-convolutions and the copy-and-crop skips
are the baseline U-Net's, so the training and evaluation tiles, the output sizes and the overlap-tile
stitching are exactly the baseline run's: only the blocks differ.

The U-Net engine reads ``padding``, ``depth``, ``size_multiple`` and ``output_size(side)`` besides
``forward`` (docs/adding_a_method.md, section 2.5); this model answers them as the unpadded U-Net does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segbench.models.unet import PAPER_DEPTH, center_crop, valid_output_size


class ResBlock(nn.Module):
    """relu(conv3(relu(conv3(x))) + crop(conv1(x))): two valid 3x3 convolutions with a projected skip."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(y + center_crop(self.skip(x), y.shape[-2:]))


class ResUNet(nn.Module):
    """The unpadded U-Net of ``depth`` poolings with residual blocks (2 output classes: P(cell) = softmax 1)."""

    padding = False  # valid convolutions: the engine crops the target to the output, as for the U-Net

    def __init__(
        self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 16, depth: int = PAPER_DEPTH
    ) -> None:
        super().__init__()
        self.depth = depth
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList(
            ResBlock(c, w) for c, w in zip([in_channels, *widths[:-2]], widths[:-1], strict=True)
        )
        self.bottom = ResBlock(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(w, w // 2, 2, stride=2) for w in reversed(widths[1:]))
        self.merge = nn.ModuleList(ResBlock(w, w // 2) for w in reversed(widths[1:]))
        self.head = nn.Conv2d(base_channels, num_classes, 1)

    @property
    def size_multiple(self) -> int:
        """Tile offsets are multiples of 2**depth, so tiled inference equals whole-image inference."""
        return 2**self.depth

    def output_size(self, side: int) -> int:
        """The valid output side of the unpadded U-Net of this depth (572 -> 388 at depth 4)."""
        return valid_output_size(side, self.depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = up(x)
            x = merge(torch.cat([center_crop(skip, x.shape[-2:]), x], dim=1))
        return self.head(x)


def res_unet(cfg: dict[str, Any]) -> ResUNet:
    """The factory segbench calls with the method run's resolved config (the baseline U-Net run's)."""
    model = cfg["model"]
    return ResUNet(
        in_channels=int(model.get("in_channels", 1)),
        num_classes=int(model.get("num_classes", 2)),
        base_channels=int(model.get("base_channels", 16)),
        depth=int(model.get("depth", PAPER_DEPTH)),
    )


res_unet.segbench_kind = "model"  # type: ignore[attr-defined]
