"""Simple points, the simple-point warp and mismatch classification (segbench.metrics.topology)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segbench.metrics import topology as T

FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)


def _patch(code: int) -> np.ndarray:
    """3 x 3 binary patch (centre 0) whose ring bits are ``code`` in NEIGHBOUR_OFFSETS order."""
    patch = np.zeros((3, 3), dtype=bool)
    for i, (dy, dx) in enumerate(T.NEIGHBOUR_OFFSETS):
        patch[1 + dy, 1 + dx] = bool(code >> i & 1)
    return patch


def _brute_topological_numbers(code: int) -> tuple[int, int]:
    """T4(x, cell) and T8(x, membrane) by labelling the 3 x 3 neighbourhood with scipy (centre excluded)."""
    patch = _patch(code)
    cells, _ = ndimage.label(patch, structure=FOUR)
    t4 = len({cells[1 + dy, 1 + dx] for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))} - {0})
    membrane = ~patch
    membrane[1, 1] = False  # the centre is not part of its own neighbourhood
    _, t8 = ndimage.label(membrane, structure=EIGHT)
    return t4, t8


def test_lut_matches_brute_force_topological_numbers_for_all_256_neighbourhoods():
    assert T.SIMPLE_LUT.shape == (256,) and T.SIMPLE_LUT.dtype == bool
    for code in range(256):
        t4, t8 = _brute_topological_numbers(code)
        assert T.topological_numbers(code) == (t4, t8), code
        assert bool(T.SIMPLE_LUT[code]) == (t4 == 1 and t8 == 1), code


def test_lut_known_configurations():
    n, s, e, w, ne = 1 << 1, 1 << 5, 1 << 3, 1 << 7, 1 << 2
    assert not T.SIMPLE_LUT[0]  # isolated pixel: T4 = 0
    assert not T.SIMPLE_LUT[255]  # interior pixel: T8 = 0
    assert T.SIMPLE_LUT[n]  # end of a line
    assert not T.SIMPLE_LUT[ne]  # only a diagonal cell: not 4-adjacent, T4 = 0
    assert not T.SIMPLE_LUT[n | s]  # bridge between two cell parts: T4 = 2
    assert T.SIMPLE_LUT[n | ne | e]  # corner of a block
    assert not T.SIMPLE_LUT[n | e]  # N and E not 4-connected without NE: T4 = 2
    assert T.SIMPLE_LUT[255 & ~w & ~(1 << 0) & ~(1 << 6)]  # straight boundary pixel


def _topology(img: np.ndarray) -> tuple[int, int]:
    """(# 4-connected cell components, # 8-connected membrane components) with a membrane border."""
    canvas = np.pad(img.astype(bool), 1)
    return ndimage.label(canvas, FOUR)[1], ndimage.label(~canvas, EIGHT)[1]


def test_flipping_a_simple_point_preserves_topology_randomized():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(30):
        img = rng.random((10, 10)) < 0.55
        before = _topology(img)
        for y in range(10):
            for x in range(10):
                if T.is_simple(img, y, x):
                    flipped = img.copy()
                    flipped[y, x] = ~flipped[y, x]
                    assert _topology(flipped) == before
                    checked += 1
    assert checked > 300


def test_warp_order_is_honoured_sequentially():
    # A = column 1, B = column 4 (rows 1..3); the target adds the bridge (2, 2), (2, 3). Whichever bridge
    # pixel comes first is simple (it only touches one object) and is added; the other then touches both
    # objects (T4 = 2) and stays.
    src = np.zeros((5, 6), np.uint8)
    src[1:4, 1] = 1
    src[1:4, 4] = 1
    tgt = src.copy()
    tgt[2, 2:4] = 1
    warped, remaining = T.warp(src, tgt, np.array([2, 2]), np.array([2, 3]))
    assert warped[2, 2] == 1 and warped[2, 3] == 0 and remaining.tolist() == [False, True]
    warped, remaining = T.warp(src, tgt, np.array([2, 2]), np.array([3, 2]))
    assert warped[2, 3] == 1 and warped[2, 2] == 0 and remaining.tolist() == [False, True]
    # the one left is a membrane pixel touching both objects and membrane: |U| = 3 -> merge
    assert T.classify_mismatches(warped, np.array([2]), np.array([2]))["merge"] == 1


def test_warp_properties_randomized():
    """After the warp, the source keeps its topology and no remaining mismatch is simple."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        src = ndimage.gaussian_filter(rng.random((24, 24)), 1.5) > 0.5
        tgt = ndimage.gaussian_filter(rng.random((24, 24)), 1.5) > 0.5
        ys, xs = T.flip_order(src != tgt, rng.random((24, 24)).astype(np.float32))
        warped, remaining = T.warp(src.astype(np.uint8), tgt.astype(np.uint8), ys, xs)
        assert _topology(warped) == _topology(src)
        left = (warped != 0) != tgt
        assert left.sum() == remaining.sum()
        for y, x in zip(*np.nonzero(left), strict=True):
            assert not T.is_simple(warped, y, x)
        counts = T.classify_mismatches(warped, ys[remaining], xs[remaining])
        assert sum(counts.values()) == remaining.sum()


def test_flip_order_column_major_stable_descending():
    mismatch = np.ones((2, 2), bool)
    key = np.array([[1.0, 1.0], [2.0, 1.0]], np.float32)
    ys, xs = T.flip_order(mismatch, key)
    # column-major scan: (0,0) k=1, (1,0) k=2, (0,1) k=1, (1,1) k=1; largest key first, ties keep scan order
    assert list(zip(ys.tolist(), xs.tolist(), strict=True)) == [(1, 0), (0, 0), (0, 1), (1, 1)]


def test_classification_uses_in_image_neighbours_only():
    # a membrane pixel at the corner of an all-cell image: in-image neighbours are 3 cells of one object
    # (the canvas outside is not a neighbour), so U = {k}: hole deletion (not hole addition with U = {0, k})
    warped = np.ones((4, 4), np.uint8)
    warped[0, 0] = 0
    assert T.classify_mismatches(warped, np.array([0]), np.array([0]))["hole_deletion"] == 1


def test_cell_pixel_with_two_labels_split_versus_hole_deletion():
    # horizontal bar: removing its middle pixel splits it (labels around: 0, left, right -> split)
    bar = np.zeros((3, 5), np.uint8)
    bar[1, :] = 1
    assert T.classify_mismatches(bar, np.array([1]), np.array([2]))["split"] == 1
    # ring: removing one pixel opens it but does not split it (labels around: 0, ring -> hole deletion)
    ring = np.zeros((7, 7), np.uint8)
    ring[1:6, 1:6] = 1
    ring[2:5, 2:5] = 0
    assert T.classify_mismatches(ring, np.array([1]), np.array([3]))["hole_deletion"] == 1
    # the trial removal is not kept: classifying the same pixel twice gives the same answer twice
    assert T.classify_mismatches(bar, np.array([1, 1]), np.array([2, 2]))["split"] == 2


@pytest.mark.parametrize("code", [0, 2, 34, 255])
def test_neighbourhood_code_roundtrip(code):
    patch = _patch(code).astype(np.uint8)
    assert T.neighbourhood_code(patch, 1, 1) == code


def _brute_classify(warped: np.ndarray, y: int, x: int) -> str:
    """The classification rules applied literally, with a full 4-connected relabelling of the image."""
    h, w = warped.shape
    lab = ndimage.label(warped, FOUR)[0]
    nb = [
        (y + dy, x + dx)
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dy or dx) and 0 <= y + dy < h and 0 <= x + dx < w
    ]
    u = {int(lab[p]) for p in nb}
    cell = bool(warped[y, x])
    if len(u) == 1:
        if u == {0}:
            return "object_deletion" if cell else "object_addition"
        return "hole_addition" if cell else "hole_deletion"
    if len(u) == 2:
        if not cell:
            return "hole_addition"
        trial = warped.copy()
        trial[y, x] = 0
        lab2 = ndimage.label(trial, FOUR)[0]
        return "split" if len({int(lab2[p]) for p in nb}) > 2 else "hole_deletion"
    return "split" if cell else "merge"


def test_classification_matches_literal_rules_with_full_relabelling_randomized():
    rng = np.random.default_rng(2)
    seen = set()
    for level in (0.45, 0.5, 0.55):
        img = (ndimage.gaussian_filter(rng.random((28, 28)), 1.2) > level).astype(np.uint8)
        img |= (rng.random(img.shape) < 0.04).astype(np.uint8)  # specks: isolated pixels, bridges
        for y in range(img.shape[0]):
            for x in range(img.shape[1]):
                got = T.classify_mismatches(img, np.array([y]), np.array([x]))
                expected = _brute_classify(img, y, x)
                assert got[expected] == 1 and sum(got.values()) == 1, (level, y, x, expected, got)
                seen.add(expected)
    assert seen == set(T.CLASSES)


def test_warp_and_classify_is_warp_then_classify_with_named_fields():
    rng = np.random.default_rng(7)
    for _ in range(10):
        src = ndimage.gaussian_filter(rng.random((24, 24)), 1.5) > 0.5
        tgt = ndimage.gaussian_filter(rng.random((24, 24)), 1.5) > 0.5
        ys, xs = T.flip_order(src != tgt, rng.random((24, 24)).astype(np.float32))
        warped, remaining = T.warp(src.astype(np.uint8), tgt.astype(np.uint8), ys, xs)
        outcome = T.warp_and_classify(src, ys, xs)
        assert (outcome.mismatches_before, outcome.mismatches_after) == (ys.size, int(remaining.sum()))
        assert outcome.classes.shape == (T.N_CLASSES,)
        assert outcome.as_dict() == T.classify_mismatches(warped, ys[remaining], xs[remaining])
        assert (outcome.split, outcome.merge) == (outcome.as_dict()["split"], outcome.as_dict()["merge"])
    empty = T.warp_and_classify(np.zeros((4, 4), bool), np.array([], int), np.array([], int))
    assert empty.mismatches_before == empty.mismatches_after == 0 and not empty.classes.any()
