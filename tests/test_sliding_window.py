"""The sliding-window CNN baseline (Ciresan et al. 2012): dense = per-window, one training step, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segbench.data import prepare
from segbench.engine import engine_for
from segbench.engine import sliding_window as sw_engine
from segbench.engine.runner import evaluate_run, train_run
from segbench.models import build
from segbench.models.sliding_window import WindowClassifier, final_map_size
from segbench.registry import resolve_run


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_dense_inference_equals_the_window_classifier(activation: str) -> None:
    """The fully-convolutional (dilated, stride-1 pooling) net gives exactly the per-window outputs."""
    torch.manual_seed(0)
    model = (
        WindowClassifier(
            window=65, kernel_sizes=(4, 5, 4, 4), conv_channels=3, fc_units=5, activation=activation
        )
        .double()
        .eval()
    )
    image = torch.randn(1, 1, 65 + 9, 65 + 6, dtype=torch.float64)
    with torch.no_grad():
        dense = model.dense(image)
        assert dense.shape == (1, 2, 10, 7)
        windows = torch.stack([image[0, :, i : i + 65, j : j + 65] for i in range(10) for j in range(7)])
        per_window = model(windows).reshape(10, 7, 2).permute(2, 0, 1)[None]
    np.testing.assert_allclose(dense.numpy(), per_window.numpy(), rtol=1e-5, atol=1e-5)


def test_dense_inference_equals_the_window_classifier_in_float32_at_the_papers_geometry() -> None:
    torch.manual_seed(1)
    model = WindowClassifier(conv_channels=4, fc_units=6).eval()
    assert model.final_size == 1 and final_map_size(65, (4, 5, 4, 4)) == 1  # N4: 65 -> 1 x 1 x maps
    image = torch.randn(1, 1, 70, 68)
    with torch.no_grad():
        dense = model.dense(image)[0]
        for i, j in ((0, 0), (5, 3), (2, 1)):
            window = model(image[:, :, i : i + 65, j : j + 65])[0]
            np.testing.assert_allclose(dense[:, i, j].numpy(), window.numpy(), rtol=1e-5, atol=1e-5)


def test_cell_probability_covers_the_image_and_averages_dihedral_versions() -> None:
    torch.manual_seed(0)
    model = WindowClassifier(conv_channels=2, fc_units=3).eval()
    image = np.random.default_rng(0).random((20, 27), dtype=np.float32)
    one = sw_engine.cell_probability(model, image, rows_per_chunk=7)
    full = sw_engine.cell_probability(model, image, rows_per_chunk=100)
    np.testing.assert_allclose(one, full, atol=1e-6)  # strips stitch exactly
    eight = sw_engine.cell_probability(model, image, test_time_rotations=7)
    assert one.shape == eight.shape == image.shape and 0 <= eight.min() and eight.max() <= 1
    for k in range(8):
        x = torch.arange(12.0).reshape(3, 4)
        assert torch.equal(sw_engine.undo_dihedral(sw_engine.dihedral(x, k), k), x)


def test_balanced_windows_are_centred_on_their_pixel() -> None:
    image = np.arange(30 * 30, dtype=np.float32).reshape(30, 30)
    cells = np.zeros((30, 30), bool)
    cells[:, 15:] = True
    sampler = sw_engine.WindowSampler([image], [cells], margin=3)
    windows, labels = sampler.batch(np.random.default_rng(0), 16)
    assert windows.shape == (16, 1, 7, 7) and labels.tolist() == [0, 1] * 8
    centres = windows[:, 0, 3, 3]
    assert all(bool(cells.ravel()[int(c)]) == bool(lab) for c, lab in zip(centres, labels, strict=True))


def test_the_family_is_registered_and_trains_one_step_at_smoke(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    prepare("em_smoke", data_root, progress=False)
    cfg = resolve_run("swcnn_isbi", "smoke", 0)
    assert cfg["family"] == "sliding_window" and engine_for("sliding_window") is sw_engine
    assert isinstance(build(cfg), WindowClassifier)
    cfg["schedule"]["iterations"] = 1
    run_dir = tmp_path / "run"
    record = train_run(cfg, run_dir, data_root)
    assert record["summary"]["iterations"] == 1 and np.isfinite(record["summary"]["final_losses"]["loss"])
    metrics = evaluate_run(cfg, run_dir, data_root)["metrics"]["isbi"]
    assert {"warping_error", "rand_error", "pixel_error", "counts"} <= set(metrics)
    assert 0 <= metrics["pixel_error"] <= 1
    assert [s["name"] for s in metrics["per_slice"]] == metrics["held_out"]  # the report's ISBI figure
    with np.load(run_dir / "predictions_val.npz") as saved:
        assert saved["probabilities"].shape[0] == len(metrics["held_out"])
