"""Plugin faults, round three (issue #36, item 11): any exception a plugin's code raises, at import, in its
contract check, in the probe at the scale's sizes or in training, is one line naming the plugin, the
file:line in its code and what to fix; nothing is written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from test_faults import one_error_line

from segbench.cli import main
from segbench.errors import InputError
from segbench.plugins import resolve_plugin

RAISING = {
    "mask_loss": """
        from segbench.models.maskrcnn import MaskLoss


        def _loss(logits, targets, classes):
            raise RuntimeError("boom in my mask loss")


        boom = MaskLoss(loss=_loss, probabilities=lambda logits, classes: logits[:, :1].sigmoid(), channels=lambda k: k)
        """,
    "mask_loss_channels": """
        from segbench.models.maskrcnn.losses import MaskLoss, sigmoid_mask_loss


        def _channels(k):
            return k // 0


        boom = MaskLoss(loss=sigmoid_mask_loss, probabilities=lambda logits, classes: logits, channels=_channels)
        """,
    "roi_layer": """
        def boom(features, rois, output_size, spatial_scale, sampling_ratio):
            raise IndexError("boom in my roi layer")
        """,
    "roi_layer_backward": """
        import torch


        class _Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.new_zeros(3, x.shape[1], 4, 5) + x.mean()

            @staticmethod
            def backward(ctx, grad):
                raise ArithmeticError("boom in my backward")


        def boom(features, rois, output_size, spatial_scale, sampling_ratio):
            return _Fn.apply(features)
        """,
    "mask_head": """
        def boom(spec):
            raise KeyError("boom in my head factory")
        """,
    "unet_loss": """
        def boom(logits, target, weights):
            raise ValueError("boom in my unet loss")
        """,
}
KINDS = {name: name.split("_backward")[0].replace("_channels", "") for name in RAISING}


def _plugin(tmp_path: Path, name: str) -> tuple[str, Path, int]:
    """Write the plugin ``name``; returns its spec, its file and the line of its ``raise`` (or ``// 0``)."""
    source = textwrap.dedent(RAISING[name]).lstrip()
    path = tmp_path / f"{name}_plugin.py"
    path.write_text(source)
    line = next(i for i, text in enumerate(source.splitlines(), 1) if "raise" in text or "// 0" in text)
    return f"{path}:boom", path, line


@pytest.mark.parametrize("name", list(RAISING))
def test_fault_plugin_raising_in_its_contract_check_names_file_and_line(tmp_path, name):
    spec, path, line = _plugin(tmp_path, name)
    with pytest.raises(InputError) as err:
        resolve_plugin(spec, KINDS[name])
    message = str(err.value)
    assert repr(spec) in message and f"{path}:{line}" in message and "fix the plugin" in message, message
    assert "\n" not in message


def test_fault_mask_loss_plugin_raising_under_compare(tmp_path, capsys):
    """The issue's case: a mask loss that raises, `segbench compare --table table2b --kind mask_loss`."""
    spec, path, line = _plugin(tmp_path, "mask_loss")
    results = tmp_path / "results"
    args = ["compare", "--method", spec, "--table", "table2b", "--kind", "mask_loss", "--scale", "smoke"]
    code = main([*args, "--results", str(results), "--device", "cpu"])
    message = one_error_line(capsys)
    assert code == 2 and repr(spec) in message and f"{path}:{line}" in message, message
    assert "RuntimeError: boom in my mask loss" in message and "fix the plugin" in message
    assert not results.exists()


def test_fault_plugin_with_a_syntax_error_under_compare(tmp_path, capsys):
    path = tmp_path / "broken_plugin.py"
    path.write_text("import torch\n\ndef boom(logits, target, weights:\n    return logits.mean()\n")
    results = tmp_path / "results"
    args = ["compare", "--method", f"{path}:boom", "--table", "unet_table1", "--kind", "unet_loss"]
    code = main([*args, "--scale", "smoke", "--results", str(results), "--device", "cpu"])
    message = one_error_line(capsys)
    assert code == 2 and re.search(rf"{re.escape(str(path))}:3\b", message) and "SyntaxError" in message
    assert not results.exists()
