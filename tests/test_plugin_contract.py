"""Plugin contracts on the scale's real sizes (segbench.plugin_probe) and plugin import failures as one line
(segbench.plugins): every breach says what was expected and what came back, before any training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segbench.compare import run_comparison
from segbench.engine.unet import evaluation_tile, training_tiles
from segbench.errors import InputError
from segbench.models.maskrcnn.losses import MaskLoss, sigmoid_mask_loss
from segbench.models.unet import UNet, build_unet
from segbench.plugin_probe import probe_method_run
from segbench.plugins import Plugin, load_object, method_run_config, resolve_plugin
from segbench.registry import resolve_run

REPO = Path(__file__).resolve().parents[1]
SEGBENCH = Path(sys.executable).with_name("segbench")


def _probe(attr: str, kind: str, run: str, scale: str = "smoke") -> None:
    """Probe this module's ``attr`` as a ``kind`` plugin on ``run`` at ``scale`` (not registered)."""
    plugin = Plugin(spec=f"{__name__}:{attr}", kind=kind, name=attr, obj=globals()[attr])
    probe_method_run(plugin, method_run_config(resolve_run(run, scale, 0), plugin))


# -- U-Net-family models -------------------------------------------------------------------------------------
def one_channel_unet(cfg):
    return UNet(num_classes=1, base_channels=4)


one_channel_unet.segbench_kind = "model"


class OffByOne(UNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[..., :-1, :-1]


def off_by_one_unet(cfg):
    return OffByOne(base_channels=4)


class NoGeometry(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def no_geometry(cfg):
    return NoGeometry()


def test_one_channel_model_is_refused_before_training(tmp_path):
    with pytest.raises(InputError, match=r"expected 2 output channels .* got 1 \(logits \[1, 1, "):
        _probe("one_channel_unet", "model", "unet_isbi")
    with pytest.raises(InputError, match="expected 2 output channels") as err:
        run_comparison(
            f"{__name__}:one_channel_unet", "unet_table1", seeds=1, scale="smoke", results=tmp_path
        )
    assert "\n" not in str(err.value)
    assert not list(tmp_path.rglob("*")), "nothing may be trained or written before the probe passes"


def test_model_one_pixel_off_names_both_sizes():
    cfg = resolve_run("unet_isbi", "smoke", 0)
    train_in, train_out = training_tiles(build_unet(cfg), int(cfg["input"]["tile"]))
    with pytest.raises(
        InputError,
        match=rf"on the training tile of {train_in} px the engine expects a {train_out} x {train_out} output "
        rf"\(padding=False.*\), got {train_out - 1} x {train_out - 1}",
    ):
        _probe("off_by_one_unet", "model", "unet_isbi")


def test_model_without_the_engine_attributes_names_them():
    with pytest.raises(InputError, match=r"NoGeometry has no padding, size_multiple, depth, output_size"):
        _probe("no_geometry", "model", "unet_isbi")


def padded_unet(cfg):
    return UNet(base_channels=4, padding=True)


def test_padded_model_must_accept_the_evaluation_tile():
    """At mini a padded net trains on 320 px (316 rounded up to 16k) and is evaluated on 332 px, the next
    valid unpadded side; a padded depth-4 U-Net that does not pad inside forward gives 320 px there."""
    with pytest.raises(
        InputError,
        match=r"on the evaluation tile of 332 px the engine expects a 332 x 332 output "
        r"\(model.output_size\(332\), used by overlap-tile\), got 320 x 320",
    ):
        _probe("padded_unet", "model", "unet_isbi", "mini")


def test_paper_unet_passes_at_the_scales_tiles():
    for scale in ("smoke", "mini"):
        _probe("build_unet", "model", "unet_isbi", scale)
    cfg = resolve_run("unet_isbi", "mini", 0)
    model = build_unet(cfg)
    train_in, _ = training_tiles(model, int(cfg["input"]["tile"]))
    assert evaluation_tile(model, train_in, cfg) >= train_in  # the probe ran both tiles


# -- U-Net losses ----------------------------------------------------------------------------------------------
def per_pixel_loss(logits, target, weights):
    return torch.nn.functional.cross_entropy(logits, target, reduction="none") * weights


per_pixel_loss.segbench_kind = "unet_loss"


def test_loss_returning_per_pixel_values_names_its_shape():
    with pytest.raises(
        InputError,
        match=r"expected a scalar tensor \(shape \[\]\) from f\(logits \[1,2,8,8\].*got a tensor "
        r"of shape \[1, 8, 8\]",
    ):
        resolve_plugin(f"{__name__}:per_pixel_loss")
    cfg = resolve_run("unet_isbi", "smoke", 0)
    _, out = training_tiles(build_unet(cfg), int(cfg["input"]["tile"]))
    with pytest.raises(
        InputError,
        match=rf"expected a scalar tensor \(shape \[\]\) from f\(logits \[1, 2, {out}, {out}\] float32, "
        rf"target \[1, {out}, {out}\] int64, weights \[1, {out}, {out}\] float32\), got a float32 tensor of "
        rf"shape \[1, {out}, {out}\]",
    ):
        _probe("per_pixel_loss", "unet_loss", "unet_isbi")


# -- Mask R-CNN components at the scale's sizes ------------------------------------------------------------------
def half_size_mask_head(spec):
    head = torch.nn.Conv2d(spec.in_channels, spec.conv_dim, 3, padding=1)
    return head, torch.nn.Conv2d(spec.conv_dim, spec.out_channels, 1)  # no 2x upsampling


def roi_layer_ignoring_output_size(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1):
    return input.new_zeros(rois.shape[0], input.shape[1], 7, 7)


bad_probabilities = MaskLoss(sigmoid_mask_loss, lambda logits, classes: logits, channels=lambda k: k)


def test_mask_head_at_the_scale_sizes_names_expected_and_got():
    with pytest.raises(
        InputError,
        match=r"at scale smoke \(run r50_fpn\+half_size_mask_head\): expected mask logits "
        r"\[N, out_channels, mask_size, mask_size\] = \[2, \d+, 28, 28\] .* got a float32 tensor of shape "
        r"\[2, \d+, 14, 14\]",
    ):
        _probe("half_size_mask_head", "mask_head", "r50_fpn")


def test_roi_layer_at_the_mask_roi_size_is_checked():
    with pytest.raises(InputError, match=r"expected \[K, C, oh, ow\] = \[3, 16, 14, 14\] from f\(features"):
        _probe("roi_layer_ignoring_output_size", "roi_layer", "r50_fpn")


def test_mask_loss_probabilities_shape_is_checked():
    with pytest.raises(InputError, match=r"expected probabilities \[N, 1, m, m\] = \[4, 1, 28, 28\], got a "):
        _probe("bad_probabilities", "mask_loss", "r50_fpn")


def maskrcnn_without_settings(cfg):
    from segbench.models.maskrcnn import build_maskrcnn

    model = build_maskrcnn(cfg)
    del model.settings
    return model


def test_maskrcnn_model_runs_one_step_and_needs_what_evaluation_reads():
    with pytest.raises(InputError, match=r"describe_heads, which reads model.settings.*AttributeError"):
        _probe("maskrcnn_without_settings", "model", "r50_fpn")
    from segbench.models import MODEL_PLUGINS
    from segbench.models.maskrcnn import build_maskrcnn

    MODEL_PLUGINS.register("build_maskrcnn_as_plugin", build_maskrcnn)
    try:
        plugin = Plugin(
            "segbench.models.maskrcnn:build_maskrcnn", "model", "build_maskrcnn_as_plugin", build_maskrcnn
        )
        probe_method_run(plugin, method_run_config(resolve_run("r50_c4", "smoke", 0), plugin))
    finally:
        MODEL_PLUGINS.unregister("build_maskrcnn_as_plugin")


# -- import failures -----------------------------------------------------------------------------------------
def _segbench(args: list[str], pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), str(REPO)])}
    return subprocess.run(
        [str(SEGBENCH), *args], capture_output=True, text=True, env=env, cwd=pythonpath, timeout=300
    )


def test_syntax_error_plugin_exits_2_with_one_line(tmp_path):
    (tmp_path / "broken_plugin.py").write_text("import torch\n\n\ndef loss(a, b, c)\n    return a\n")
    done = _segbench(
        ["compare", "--method", "broken_plugin:loss", "--table", "unet_table1", "--scale", "smoke"]
        + ["--results", str(tmp_path / "results")],
        tmp_path,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"{tmp_path / 'broken_plugin.py'}:4" in lines[0] and "SyntaxError" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("source", "error", "line"),
    [
        ("import math\n\nVALUE = math.sqrt(-1)\n", "ValueError", 3),
        ("import no_such_dependency_xyz\n", "ModuleNotFoundError", 1),
        ("X = 1\nY = undefined_name\n", "NameError", 2),
    ],
)
def test_plugin_raising_at_import_names_its_file_and_line(tmp_path, monkeypatch, source, error, line):
    package = tmp_path / f"pkg_{error.lower()}"
    package.mkdir()
    (package / "__init__.py").write_text("from . import layers\n")
    (package / "layers.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError) as err:
        load_object(f"{package.name}.layers:thing")
    assert f"raised {error} at {package / 'layers.py'}:{line}" in str(err.value)
    with pytest.raises(InputError, match=rf"raised {error} at .*layers.py:{line}"):
        load_object(f"{tmp_path / package.name / 'layers.py'}:thing")


def test_entry_point_raising_at_import_names_its_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "ep_plugin_mod.py").write_text("import torch\n\nraise RuntimeError('no GPU here')\n")
    dist = tmp_path / "ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[segbench.plugins]\nep_broken = ep_plugin_mod:loss\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError) as err:
        load_object("ep_broken")
    assert (
        f"entry point 'ep_plugin_mod:loss' raised RuntimeError at {tmp_path / 'ep_plugin_mod.py'}:3"
        in str(err.value)
    )
    assert "no GPU here" in str(err.value)
