"""The plugin API: loading, contract checks with useful errors, registration, method run configs, and the
worked examples (Precise RoI Pooling against a numerical integral; the Dice + weighted CE loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from examples.dice_loss import dice_weighted_ce
from examples.precise_roi_pool import prroi_pool
from segbench.errors import InputError
from segbench.ops import ROI_LAYERS, make_roi_layer
from segbench.plugins import load_object, method_run_config, register_plugin, resolve_plugin
from segbench.registry import resolve_run


def numeric_prroi(
    features: np.ndarray, roi: np.ndarray, out: int, scale: float, samples: int = 400
) -> np.ndarray:
    """Mean of the bilinear interpolant over each bin by a dense midpoint rule (zero outside the map)."""
    _, h, w = features.shape
    x0, y0, x1, y1 = roi * scale
    result = np.zeros((features.shape[0], out, out))
    for p in range(out):
        for q in range(out):
            ys = y0 + (y1 - y0) * (p + (np.arange(samples) + 0.5) / samples) / out
            xs = x0 + (x1 - x0) * (q + (np.arange(samples) + 0.5) / samples) / out
            wy = np.clip(1 - np.abs(ys[:, None] - np.arange(h)[None]), 0, None)  # [S, H]
            wx = np.clip(1 - np.abs(xs[:, None] - np.arange(w)[None]), 0, None)  # [S, W]
            result[:, p, q] = np.einsum("si,cij,tj->c", wy, features, wx) / samples**2
    return result


def test_prroi_pool_is_the_integral_of_the_bilinear_surface():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 3, 9, 11))
    rois = np.array([[0, 1.3, 0.7, 8.2, 6.9], [1, -1.5, 2.0, 4.0, 10.5], [1, 3.2, 3.1, 3.6, 3.4]])
    got = prroi_pool(torch.from_numpy(features), torch.from_numpy(rois), 2, 1.0).numpy()
    for k, roi in enumerate(rois):
        want = numeric_prroi(features[int(roi[0])], roi[1:], 2, 1.0)
        np.testing.assert_allclose(got[k], want, atol=2e-4)


def test_prroi_pool_of_a_constant_map_inside_is_the_constant():
    features = torch.full((1, 1, 8, 8), 3.0, dtype=torch.float64)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 5.5]], dtype=torch.float64)
    assert torch.allclose(prroi_pool(features, rois, 3), torch.full((1, 1, 3, 3), 3.0, dtype=torch.float64))


def test_prroi_pool_gradcheck():
    features = torch.rand(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.6, 1.1, 4.7, 5.2]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: prroi_pool(f, rois, 2, 1.0), (features,))


def test_register_roi_layer_plugin_and_build_its_method_run():
    plugin = register_plugin("examples.precise_roi_pool:prroi_pool")
    assert (plugin.kind, plugin.name) == ("roi_layer", "prroi_pool")
    assert ROI_LAYERS["prroi_pool"] is prroi_pool and make_roi_layer("prroi_pool") is prroi_pool
    base = resolve_run("r50_c4", "smoke", 1)
    cfg = method_run_config(base, plugin)
    assert cfg["run_id"] == "r50_c4+prroi_pool-seed1" and cfg["model"]["roi_layer"] == "prroi_pool"
    assert {k: v for k, v in cfg["model"].items() if k != "roi_layer"} == {
        k: v for k, v in base["model"].items() if k != "roi_layer"
    }  # identical protocol otherwise
    assert cfg["schedule"] == base["schedule"] and cfg["dataset"] == base["dataset"]


def test_model_with_plugin_roi_layer_trains_one_step():
    from segbench.models import build

    plugin = register_plugin("examples.precise_roi_pool:prroi_pool")
    cfg = method_run_config(resolve_run("r50_c4", "smoke", 0), plugin)
    cfg["model"]["num_classes"] = 3
    model = build(cfg).train()
    image = torch.rand(3, 64, 64)
    target = {
        "boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]),
        "labels": torch.tensor([1]),
        "masks": torch.zeros(1, 64, 64, dtype=torch.uint8),
    }
    target["masks"][0, 8:40, 8:40] = 1
    losses = model([image], [target])
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()


def test_unet_loss_plugin_and_dice_term():
    plugin = register_plugin("examples.dice_loss:dice_weighted_ce")
    assert plugin.kind == "unet_loss"
    from segbench.engine.unet import UNET_LOSSES

    assert UNET_LOSSES["dice_weighted_ce"] is dice_weighted_ce
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2] = 1
    perfect = torch.where(target.bool(), 20.0, -20.0)[:, None].repeat(1, 2, 1, 1)
    perfect[:, 0] *= -1
    assert dice_weighted_ce(perfect.float(), target, torch.ones(1, 4, 4)).item() == pytest.approx(
        0.0, abs=1e-6
    )
    cfg = method_run_config(resolve_run("unet_isbi", "smoke", 0), plugin)
    assert cfg["model"]["loss"] == "dice_weighted_ce"


def bad_shape_layer(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1):
    return input.new_zeros(rois.shape[0], input.shape[1], 2, 2)


bad_shape_layer.segbench_kind = "roi_layer"


def test_contract_breach_names_the_contract_and_the_expected_shape():
    with pytest.raises(
        InputError,
        match=r"breaks the roi_layer contract: expected output shape \[K, C, oh, ow\] "
        r"= \[3, 3, 4, 5\].*got \(3, 3, 2, 2\)",
    ):
        resolve_plugin(f"{__name__}:bad_shape_layer")


def test_bad_specs_are_explained():
    with pytest.raises(InputError, match="has no attribute 'nope'"):
        load_object("examples.precise_roi_pool:nope")
    with pytest.raises(InputError, match="cannot import 'no_such_pkg_xyz.mod'"):
        load_object("no_such_pkg_xyz.mod:thing")
    with pytest.raises(InputError, match="not a module:attr path nor an entry point"):
        load_object("just-a-name")
    with pytest.raises(InputError, match="unknown kind"):
        resolve_plugin("examples.precise_roi_pool:bin_weights")
    with pytest.raises(InputError, match="replaces a maskrcnn component"):
        method_run_config(
            resolve_run("unet_isbi", "smoke", 0), resolve_plugin("examples.precise_roi_pool:prroi_pool")
        )
