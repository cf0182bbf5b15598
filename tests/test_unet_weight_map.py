"""Equation 2 of the U-Net paper against a hand computation on two touching discs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from segbench.data.weight_map import (
    cached_weight_map,
    instances_from_binary,
    separate_touching,
    training_target,
    unet_weight_map,
)


def two_touching_discs() -> np.ndarray:
    """Discs of radius 8 centred at (20, 20) and (20, 37): they touch only at (20, 28) | (20, 29)."""
    rows, cols = np.mgrid[:41, :58]
    labels = np.zeros(rows.shape, np.int32)
    labels[(rows - 20) ** 2 + (cols - 20) ** 2 <= 64] = 1
    labels[(rows - 20) ** 2 + (cols - 37) ** 2 <= 64] = 2
    return labels


def test_separation_border_removes_exactly_the_touching_pixels() -> None:
    labels = two_touching_discs()
    changed = np.argwhere(separate_touching(labels) != labels)
    assert changed.tolist() == [[20, 28], [20, 29]]


def test_weight_on_the_separating_border_matches_equation_2() -> None:
    labels = two_touching_discs()
    weights = unet_weight_map(labels, w0=10.0, sigma=5.0)
    background = int((training_target(labels) == 0).sum())
    w_c = labels.size / (2 * background)  # inverse class frequency, mean 1 over the image
    # (20, 28): nearest disc-1 pixel (20, 27) at d1 = 1; nearest disc-2 pixel (20, 30) at d2 = 2.
    expected = w_c + 10.0 * math.exp(-((1 + 2) ** 2) / (2 * 5.0**2))
    assert weights[20, 28] == pytest.approx(expected, rel=1e-6)
    # Far from both discs only w_c remains; inside a cell there is no border term.
    assert weights[0, 57] == pytest.approx(w_c, rel=1e-6)
    cell_weight = labels.size / (2 * (labels.size - background))
    assert weights[20, 20] == pytest.approx(cell_weight, rel=1e-6)


def test_binary_isbi_labels_are_untouched_and_cached(tmp_path: Path) -> None:
    mask = np.zeros((32, 32), bool)
    mask[2:14, 2:30] = True
    mask[16:30, 2:30] = True  # two cells separated by a 2-pixel membrane
    instances = instances_from_binary(mask)
    assert instances.max() == 2
    assert np.array_equal(training_target(instances), mask.astype(np.int64))
    label_file = tmp_path / "labels.tif"
    label_file.write_bytes(b"stand-in for a label file")
    first = cached_weight_map(label_file, 0, instances, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("weight_map_*.npy"))) == 1
    assert np.array_equal(cached_weight_map(label_file, 0, instances, tmp_path / "cache"), first)
    assert first[14, 10] > first[0, 0] + 5  # membrane between the cells is emphasised
