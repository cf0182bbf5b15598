"""Elastic deformation (section 3.1): identity at zero displacement, labels keep their exact values."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from segbench.data.augment import AugmentParams, augment_tile, elastic_displacement


def test_zero_displacement_is_the_identity() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((40, 52)).astype(np.float32)
    labels = rng.integers(0, 2, (40, 52)).astype(np.uint8) * 255
    weights = rng.random((40, 52)).astype(np.float32)
    params = AugmentParams(
        elastic=True, std_px=0.0, rotate=False, flip=False, shift=False, grey_gain=0.0, grey_offset=0.0
    )
    out = augment_tile(rng, image, labels, weights, (40, 52), params=params)
    np.testing.assert_allclose(out[0], image, atol=1e-5)
    assert np.array_equal(out[1], labels)
    np.testing.assert_allclose(out[2], weights, atol=1e-6)


def test_displacement_field_is_the_bicubic_zoom_of_the_coarse_grid() -> None:
    field = elastic_displacement(np.random.default_rng(1), (120, 90), grid=3, std_px=10.0)
    coarse = np.random.default_rng(1).normal(0.0, 10.0, size=(2, 3, 3))
    direct = ndimage.zoom(coarse, (1, 40, 30), order=3, mode="nearest", grid_mode=False)
    np.testing.assert_allclose(field, direct, atol=1e-9)
    np.testing.assert_allclose(field[:, ::-119, ::-89], coarse[:, ::-2, ::-2], atol=1e-9)  # corners = nodes


def test_labels_keep_exact_values_and_move_with_the_image() -> None:
    rng = np.random.default_rng(2)
    instances = np.zeros((64, 64), np.int32)
    instances[8:30, 8:30], instances[34:60, 10:50], instances[5:20, 40:60] = 3, 7, 12
    binary = np.where(instances > 0, 255, 0).astype(np.uint8)
    image = (instances > 0).astype(np.float32)
    for _ in range(5):
        seed = int(rng.integers(1 << 30))
        img, inst, _ = augment_tile(np.random.default_rng(seed), image, instances, image, (64, 64))
        _, bin_out, _ = augment_tile(np.random.default_rng(seed), image, binary, image, (64, 64))
        assert set(np.unique(inst)) <= {0, 3, 7, 12}
        assert set(np.unique(bin_out)) <= {0, 255}
        assert np.array_equal(bin_out == 255, inst > 0)  # same deformation for every array
        agree = ((img > 0.5) == (inst > 0)).mean()
        assert agree > 0.95  # image moved with the labels


def test_output_tile_is_the_centre_of_the_input_tile() -> None:
    rows, cols = np.mgrid[:50, :50]
    image = (np.sin(rows / 6.0) + np.cos(cols / 9.0)).astype(np.float32)  # smooth: cubic ~ linear
    params = AugmentParams(grey_gain=0.0, grey_offset=0.0)
    img, lab, w = augment_tile(
        np.random.default_rng(4), image, image.copy(), image, (48, 48), (20, 20), params
    )
    assert img.shape == (48, 48) and lab.shape == w.shape == (20, 20)
    np.testing.assert_allclose(w, img[14:34, 14:34], atol=0.02)
