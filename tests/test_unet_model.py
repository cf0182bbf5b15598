"""The U-Net of section 2 / Figure 1: size arithmetic, parameter count, layer count, initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from segbench.errors import InputError
from segbench.models.unet import UNet, build_unet, incoming_nodes, valid_input_size, valid_output_size


def test_paper_network_has_31_030_658_parameters_and_23_conv_layers() -> None:
    with torch.device("meta"):
        model = UNet(in_channels=1, num_classes=2, base_channels=64)
    assert sum(p.numel() for p in model.parameters()) == 31_030_658
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert len(convs) == 23


def test_572_input_gives_388_output() -> None:
    assert valid_output_size(572) == 388
    assert valid_input_size(388) == 572
    model = UNet(base_channels=2).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 572, 572)).shape == (1, 2, 388, 388)


def test_padded_variant_keeps_the_input_size() -> None:
    model = UNet(base_channels=2, depth=3, padding=True).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 48, 64)).shape == (1, 2, 48, 64)


@pytest.mark.parametrize("size", [92, 570, 10])
def test_invalid_tiles_are_refused(size: int) -> None:
    with pytest.raises(InputError, match="input tile"):
        valid_output_size(size)


def test_he_initialisation_std_uses_incoming_nodes() -> None:
    torch.manual_seed(0)
    model = UNet(base_channels=16, depth=2)
    conv = model.up[0].convs[0]  # 3x3 conv, 64 input channels: N = 9 * 64 = 576
    assert incoming_nodes(conv) == 576
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.05)
    upconv = model.up[0].up  # 2x2 stride-2 up-conv: one tap per input channel
    assert incoming_nodes(upconv) == 64
    assert torch.count_nonzero(conv.bias) == 0


def test_build_unet_reads_the_resolved_model_keys() -> None:
    cfg = {
        "model": {
            "padding": False,
            "in_channels": 1,
            "num_classes": 2,
            "base_channels": 4,
            "weight_map": True,
            "elastic": True,
        }
    }
    model = build_unet(cfg)
    assert model.head.out_channels == 2 and model.down[0][0].out_channels == 4
    with pytest.raises(InputError, match="base_channels"):
        build_unet({"model": {"base_channels": "64"}})
