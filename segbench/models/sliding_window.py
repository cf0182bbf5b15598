"""The sliding-window CNN of Ciresan, Giusti, Gambardella, Schmidhuber, "Deep neural networks segment
neuronal membranes in electron microscopy images", NIPS 2012 ("IDSIA" in U-Net Table 1).

Each pixel is classified (membrane / non-membrane) from the square window of raw intensities centred on
it. Their net N4: 65 x 65 input, C(48, 4x4) - MP2 - C(48, 5x5) - MP2 - C(48, 4x4) - MP2 - C(48, 4x4) - MP2 -
FC(200) - FC(2), scaled tanh units, softmax output. Here the widths are configurable (``conv_channels``,
``fc_units``: reduced on the CPU scales) and the geometry (``window``, ``kernel_sizes``) is the paper's.

:meth:`WindowClassifier.forward` is the per-window classifier (N x 1 x w x w -> N x 2 logits).
:meth:`WindowClassifier.dense` is its fully-convolutional equivalent for a whole image: every stride-2
max-pooling becomes a stride-1 pooling and every later convolution/pooling is dilated by the product of
the strides before it ("filter rarefaction"), so that output pixel (i, j) is exactly the window classifier
applied to ``image[i:i+w, j:j+w]`` (tests/test_sliding_window.py checks this to 1e-5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segbench.errors import InputError

PAPER_WINDOW = 65
PAPER_KERNELS = (4, 5, 4, 4)
PAPER_CHANNELS = 48
PAPER_FC = 200
ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu}


def final_map_size(window: int, kernel_sizes: Sequence[int]) -> int:
    """Side of the feature map after the conv/max-pool stack for a ``window`` input (floor pooling)."""
    side = window
    for k in kernel_sizes:
        side = (side - k + 1) // 2
        if side < 1:
            raise InputError(
                f"sliding-window CNN: window {window} is too small for kernels {list(kernel_sizes)}"
            )
    return side


class WindowClassifier(nn.Module):
    def __init__(
        self,
        window: int = PAPER_WINDOW,
        kernel_sizes: Sequence[int] = PAPER_KERNELS,
        conv_channels: int | Sequence[int] = PAPER_CHANNELS,
        fc_units: int = PAPER_FC,
        activation: str = "tanh",
        num_classes: int = 2,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise InputError(f"model.activation={activation!r}: choose one of {', '.join(ACTIVATIONS)}")
        channels = (
            [conv_channels] * len(kernel_sizes) if isinstance(conv_channels, int) else list(conv_channels)
        )
        if len(channels) != len(kernel_sizes):
            raise InputError(
                f"model.conv_channels {channels} and kernel_sizes {list(kernel_sizes)} differ in length"
            )
        self.window, self.kernel_sizes, self.activation = int(window), tuple(kernel_sizes), activation
        self.final_size = final_map_size(self.window, self.kernel_sizes)
        convs, previous = [], in_channels
        for out, k in zip(channels, self.kernel_sizes, strict=True):
            convs.append(nn.Conv2d(previous, out, k))
            previous = out
        self.convs = nn.ModuleList(convs)
        self.fc1 = nn.Conv2d(previous, fc_units, self.final_size)  # FC(fc_units) over the final map
        self.fc2 = nn.Conv2d(fc_units, num_classes, 1)  # FC(num_classes)

    @property
    def margin(self) -> int:
        """Pixels of context on each side of the centre (the window is ``2 * margin + 1`` for odd windows)."""
        return self.window // 2

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Logits (N x num_classes) of N x C x w x w windows."""
        act = ACTIVATIONS[self.activation]
        x = windows
        for conv in self.convs:
            x = F.max_pool2d(act(conv(x)), 2)
        return self.fc2(act(self.fc1(x))).flatten(1)

    def dense(self, image: torch.Tensor) -> torch.Tensor:
        """Logits (N x classes x (H-w+1) x (W-w+1)) of every window of an N x C x H x W input: output
        (i, j) = ``forward(image[..., i:i+w, j:j+w])``."""
        act = ACTIVATIONS[self.activation]
        x, dilation = image, 1
        for conv in self.convs:
            x = F.conv2d(x, conv.weight, conv.bias, dilation=dilation)
            x = F.max_pool2d(act(x), 2, stride=1, dilation=dilation)
            dilation *= 2
        x = act(F.conv2d(x, self.fc1.weight, self.fc1.bias, dilation=dilation))
        x = F.conv2d(x, self.fc2.weight, self.fc2.bias)
        h, w = image.shape[-2] - self.window + 1, image.shape[-1] - self.window + 1
        return x[..., :h, :w]  # the floor poolings leave positions beyond the last full window


def build_sliding_window(cfg: dict[str, Any]) -> WindowClassifier:
    """The classifier of a resolved run config (``model``: window, kernel_sizes, conv_channels, fc_units,
    activation, num_classes, in_channels)."""
    model_cfg = cfg.get("model", {})
    known = (
        "window",
        "kernel_sizes",
        "conv_channels",
        "fc_units",
        "activation",
        "num_classes",
        "in_channels",
    )
    return WindowClassifier(**{k: model_cfg[k] for k in known if k in model_cfg})
