"""ISBI 2012 and Cell Tracking Challenge loaders: one-line InputErrors; the held-out split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from segbench.data.biomedical import ctc_frames, held_out_split, isbi_images, load_isbi_stack
from segbench.errors import InputError


def write_isbi(folder: Path, labels: np.ndarray, slices: int = 5) -> tuple[Path, Path]:
    volume = folder / "train-volume.tif"
    tifffile.imwrite(volume, np.full((slices, 16, 16), 100, np.uint8))
    tifffile.imwrite(folder / "train-labels.tif", labels)
    return volume, folder / "train-labels.tif"


def test_isbi_errors_name_the_file(tmp_path: Path) -> None:
    good = np.zeros((5, 16, 16), np.uint8)
    good[:, 2:8, 2:8] = 255
    volume, labels = write_isbi(tmp_path, good)
    with pytest.raises(InputError, match="missing.tif: ISBI labels not found"):
        load_isbi_stack(volume, tmp_path / "missing.tif")
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="corrupt.tif: unreadable ISBI labels"):
        load_isbi_stack(volume, tmp_path / "corrupt.tif")
    tifffile.imwrite(labels, np.where(good > 0, 128, 0).astype(np.uint8))
    with pytest.raises(InputError, match="must be binary"):
        load_isbi_stack(volume, labels)
    tifffile.imwrite(labels, good[:3], photometric="minisblack")
    with pytest.raises(InputError, match="differs from volume shape"):
        load_isbi_stack(volume, labels)


def test_isbi_split_holds_out_the_last_contiguous_fold(tmp_path: Path) -> None:
    labels = np.zeros((10, 16, 16), np.uint8)
    labels[:, 1:7, 1:7] = labels[:, 9:15, 9:15] = 255
    images = isbi_images(*write_isbi(tmp_path, labels, slices=10))
    assert images[0].instances.max() == 2
    split = held_out_split("isbi2012", [images])
    assert [img.index for img in split.held_out] == [8, 9] and len(split.train) == 8
    assert "slices 8-9" in split.protocol
    assert [img.index for img in held_out_split("isbi2012", [images], fold=0).held_out] == [0, 1]


def test_ctc_frames_pair_annotated_frames_and_report_orphans(tmp_path: Path) -> None:
    frames, gt = tmp_path / "01", tmp_path / "01_GT" / "SEG"
    frames.mkdir()
    gt.mkdir(parents=True)
    for t in range(3):
        tifffile.imwrite(frames / f"t{t:03d}.tif", np.full((12, 12), 1000 + t, np.uint16))
    seg = np.zeros((12, 12), np.uint16)
    seg[2:6, 2:6], seg[6:10, 6:10] = 3, 9
    tifffile.imwrite(gt / "man_seg001.tif", seg)
    loaded = ctc_frames(frames, gt)
    assert [f.name for f in loaded] == ["01/t001"] and set(np.unique(loaded[0].instances)) == {0, 3, 9}
    tifffile.imwrite(gt / "man_seg007.tif", seg)
    with pytest.raises(InputError, match="no frame t007.tif"):
        ctc_frames(frames, gt)


@pytest.mark.shared_data
def test_real_isbi_training_stack_loads_and_splits(shared_data: Path) -> None:
    root = shared_data / "isbi2012"
    volume, labels = load_isbi_stack(root / "train-volume.tif", root / "train-labels.tif")
    assert volume.shape == labels.shape == (30, 512, 512) and volume.dtype == np.uint8
    assert set(np.unique(labels[:3]).tolist()) == {0, 255}
    images = isbi_images(root / "train-volume.tif", root / "train-labels.tif")
    split = held_out_split("isbi2012", [images])
    assert [img.index for img in split.held_out] == list(range(24, 30)) and len(split.train) == 24
