"""The smoothed-intensity threshold baseline: fitted threshold, maps in [0, 1], 4-connected instances."""

from __future__ import annotations

import numpy as np
import pytest

from segbench.errors import InputError
from segbench.models.classical import SmoothedThreshold, build_classical


def dark_cells_on_bright_background(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:64, :64]
    cells = ((rows - 20) ** 2 + (cols - 20) ** 2 < 100) | ((rows - 45) ** 2 + (cols - 40) ** 2 < 150)
    image = np.where(cells, 0.3, 0.7) + rng.normal(0, 0.1, cells.shape)
    return image.astype(np.float32), cells


def test_fit_finds_polarity_and_maps_lie_in_unit_interval() -> None:
    images, masks = zip(*(dark_cells_on_bright_background(s) for s in range(3)), strict=True)
    model = build_classical({"model": {"method": "smoothed_threshold", "sigma_px": 2.0}}).fit(images, masks)
    assert model.polarity == -1 and 0.4 < model.threshold < 0.6
    image, cells = dark_cells_on_bright_background(7)
    prob = model.cell_probability(image)
    assert prob.dtype == np.float32 and prob.min() >= 0.0 and prob.max() <= 1.0
    assert ((prob > 0.5) == cells).mean() > 0.97
    assert model.instances(image).max() == 2
    restored = SmoothedThreshold.from_state(model.state())
    np.testing.assert_array_equal(restored.cell_probability(image), prob)


def test_bad_configs_and_unfitted_models_are_refused() -> None:
    with pytest.raises(InputError, match="method"):
        build_classical({"model": {"method": "otsu_magic"}})
    with pytest.raises(InputError, match="fit"):
        SmoothedThreshold().cell_probability(np.zeros((4, 4)))
