"""The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015), section 2 and Figure 1.

Contracting path: ``depth`` steps of two unpadded 3x3 convolutions + ReLU and a 2x2 max pool (stride 2),
doubling the channels at each step; a bottom block of two 3x3 convolutions, with dropout at the end of the
contracting path (section 3.1); an expanding path of 2x2 up-convolutions halving the channels, concatenation
with the centre-cropped contracting feature map and two 3x3 convolutions + ReLU; a final 1x1 convolution.
At depth 4 that is 10 + 4 + 8 + 1 = 23 convolutional layers and, with 1 input channel, 2 classes and 64 base
channels, 31,030,658 parameters; a 572 x 572 input tile gives a 388 x 388 output (Figure 1).
Weights are drawn from N(0, 2/N), N = k * k * C_in incoming nodes (section 3, He et al.); biases are 0.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from segbench.errors import InputError

PAPER_DEPTH = 4


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by a ReLU (unpadded unless ``padding``)."""

    def __init__(self, in_channels: int, out_channels: int, padding: bool) -> None:
        pad = 1 if padding else 0
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=pad),
            nn.ReLU(inplace=True),
        )


class UpStep(nn.Module):
    """2x2 up-convolution halving the channels, concatenation with the cropped skip, two 3x3 convs."""

    def __init__(self, in_channels: int, padding: bool) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.convs = DoubleConv(in_channels, in_channels // 2, padding)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.convs(torch.cat([center_crop(skip, x.shape[-2:]), x], dim=1))


def center_crop(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The central ``size`` window of an N x C x H x W tensor (the copy-and-crop arrows of Figure 1)."""
    top = (x.shape[-2] - size[0]) // 2
    left = (x.shape[-1] - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]


class UNet(nn.Module):
    """U-Net (section 2). ``padding=True`` pads the 3x3 convolutions, so the output has the input's size."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 64,
        depth: int = PAPER_DEPTH,
        padding: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if depth < 1 or base_channels < 1:
            raise InputError(f"UNet: depth={depth}, base_channels={base_channels}; both must be >= 1")
        self.depth = depth
        self.padding = padding
        widths = [base_channels * 2**level for level in range(depth + 1)]
        down_inputs = [in_channels, *widths[:-2]]
        self.down = nn.ModuleList(
            DoubleConv(c_in, c_out, padding) for c_in, c_out in zip(down_inputs, widths[:-1], strict=True)
        )
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bottom = DoubleConv(widths[-2], widths[-1], padding)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList(UpStep(width, padding) for width in reversed(widths[1:]))
        self.head = nn.Conv2d(base_channels, num_classes, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Section 3: Gaussian weights with std sqrt(2 / N), N = k * k * C_in; zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / incoming_nodes(module)))
                nn.init.zeros_(module.bias)

    def output_size(self, input_size: int) -> int:
        """Spatial output size for an input tile side (raises InputError for an invalid side)."""
        return input_size if self.padding else valid_output_size(input_size, self.depth)

    @property
    def size_multiple(self) -> int:
        """Tile offsets must be multiples of this (2**depth) for tiling to equal whole-image inference."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.bottom(x))
        for step, skip in zip(self.up, reversed(skips), strict=True):
            x = step(x, skip)
        return self.head(x)


def incoming_nodes(conv: nn.Conv2d | nn.ConvTranspose2d) -> int:
    """N of section 3: inputs feeding one output neuron. k*k*C_in for a convolution (9 * 64 = 576 in the
    paper's example); for the 2x2 stride-2 up-convolution each output pixel meets one kernel tap per input
    channel, so N = C_in * (k / stride)^2 = C_in."""
    kernel = conv.kernel_size[0] * conv.kernel_size[1]
    if isinstance(conv, nn.ConvTranspose2d):
        kernel = max(1, kernel // (conv.stride[0] * conv.stride[1]))
    return conv.in_channels * kernel


def valid_output_size(input_size: int, depth: int = PAPER_DEPTH) -> int:
    """Output side of the unpadded U-Net for an input side (572 -> 388 at depth 4).

    Section 2: every 2x2 max pool must see an even size; each 3x3 conv loses 2 pixels."""
    size = input_size
    for _ in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            raise InputError(
                f"input tile {input_size}: a 2x2 max pool would see size {size}; use a valid "
                f"tile such as {valid_input_size(4, depth)} + 16k (see valid_input_size)"
            )
        size //= 2
    size -= 4
    for _ in range(depth):
        size = 2 * size - 4
    if size <= 0:
        raise InputError(
            f"input tile {input_size}: too small for a depth-{depth} U-Net; "
            f"use at least {valid_input_size(4, depth)}"
        )
    return size


def valid_input_size(output_size: int, depth: int = PAPER_DEPTH) -> int:
    """Input side that yields exactly ``output_size`` (388 -> 572 at depth 4); InputError if none does."""
    size = output_size
    for _ in range(depth):
        if (size + 4) % 2:
            raise InputError(
                f"output size {output_size}: no input tile gives it at depth {depth}; "
                f"valid outputs are 4 + {2**depth}k"
            )
        size = (size + 4) // 2
    size += 4
    for _ in range(depth):
        size = 2 * size + 4
    return size


def smallest_valid_input_at_least(size: int, depth: int = PAPER_DEPTH) -> int:
    """The smallest valid unpadded input side >= ``size`` (valid sides are spaced 2**depth apart)."""
    smallest = valid_input_size(4, depth)
    step = 2**depth
    return smallest + max(0, math.ceil((size - smallest) / step)) * step


def build_unet(cfg: dict[str, Any]) -> UNet:
    """Build the U-Net of a resolved run config (``cfg["model"]``: in_channels, num_classes, base_channels,
    padding, optional depth and dropout)."""
    model_cfg = cfg.get("model", {})
    known = {"in_channels", "num_classes", "base_channels", "padding", "depth", "dropout"}
    args = {key: model_cfg[key] for key in known if key in model_cfg}
    for key, kind in (("in_channels", int), ("num_classes", int), ("base_channels", int), ("depth", int)):
        if key in args and (not isinstance(args[key], kind) or isinstance(args[key], bool)):
            raise InputError(f"model.{key}={args[key]!r} in the run config: expected an integer")
    return UNet(**args)
