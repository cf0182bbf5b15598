"""Overlap-tile inference (Figure 2) equals whole-image inference; dihedral test-time averaging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segbench.engine.overlap_tile import DIHEDRAL_GROUP, dihedral_versions, predict_tiled
from segbench.errors import InputError
from segbench.models.unet import UNet, smallest_valid_input_at_least


def whole_image_probabilities(model: UNet, image: np.ndarray) -> np.ndarray:
    """One forward pass on the mirror-padded image (valid output = the image)."""
    border = (60 - model.output_size(60)) // 2
    h, w = image.shape
    rows, cols = (smallest_valid_input_at_least(n + 2 * border, model.depth) for n in (h, w))
    padded = np.pad(image, ((border, rows - h - border), (border, cols - w - border)), mode="reflect")
    with torch.no_grad():
        out = torch.softmax(model(torch.from_numpy(padded)[None, None]), dim=1)[0].numpy()
    return out[:, :h, :w]


@pytest.mark.parametrize("tile", [60, 92, 300])
def test_tiled_equals_whole_image(tile: int) -> None:
    torch.manual_seed(0)
    model = UNet(base_channels=2, depth=2).eval()
    image = np.random.default_rng(0).random((37, 53)).astype(np.float32)
    tiled = predict_tiled(model, image, tile)
    assert tiled.shape == (2, 37, 53)
    np.testing.assert_allclose(tiled, whole_image_probabilities(model, image), atol=1e-5)


def test_dihedral_averaging_is_the_mean_of_the_transformed_predictions() -> None:
    torch.manual_seed(1)
    model = UNet(base_channels=2, depth=2).eval()
    image = np.random.default_rng(1).random((36, 44)).astype(np.float32)
    averaged = predict_tiled(model, image, 60, transforms=DIHEDRAL_GROUP)

    def rotated(img: np.ndarray, k: int) -> np.ndarray:
        """Predict on the image turned k quarter turns, and turn the prediction back."""
        return np.rot90(predict_tiled(model, np.ascontiguousarray(np.rot90(img, k)), 60), -k, axes=(1, 2))

    manual = np.mean(
        [rotated(image, k) for k in range(4)] + [rotated(image[:, ::-1], k)[:, :, ::-1] for k in range(4)],
        axis=0,
    )
    np.testing.assert_allclose(averaged, manual, atol=1e-5)
    assert not np.allclose(averaged, predict_tiled(model, image, 60), atol=1e-4)
    np.testing.assert_allclose(averaged.sum(axis=0), 1.0, atol=1e-5)


def test_transform_sets() -> None:
    assert len(dihedral_versions(7)) == 8 and len(set(dihedral_versions(7))) == 8
    x = torch.arange(12.0).reshape(1, 3, 4)
    for t in DIHEDRAL_GROUP:
        assert torch.equal(t.invert(t.apply(x)), x)
    with pytest.raises(InputError, match="test_time_rotations"):
        dihedral_versions(8)
