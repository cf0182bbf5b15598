"""Synthetic datasets at smoke scale: formats (read back with pycocotools / tifffile), determinism, and
atomic generation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from pycocotools.coco import COCO
from scipy import ndimage

from segbench import data
from segbench.data import synthetic
from segbench.errors import InputError

SMOKE = ["shapes_smoke", "keypoints_smoke", "em_smoke", "phc_smoke", "hela_smoke"]
# COCO's person keypoints, in COCO's order (person_keypoints_val2017.json, category 1).
COCO_KEYPOINTS = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for name in SMOKE:
        data.prepare(name, root, seed=0)
    return root


def file_hashes(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def load_coco(path: Path) -> COCO:
    coco = COCO(str(path))
    return coco


@pytest.mark.parametrize("name", ["shapes_smoke", "keypoints_smoke"])
def test_coco_annotations_agree_with_their_masks(smoke_root, name):
    paths = data.dataset_paths(name, smoke_root)
    size = data.dataset_entry(name)["params"]["image_size"]
    for split in ("train", "val"):
        coco = load_coco(paths[split]["annotations"])
        assert coco.getImgIds() and coco.getAnnIds()
        assert coco.dataset["info"]["segbench"]["area_thresholds"] == pytest.approx(
            [(32 * size / 640) ** 2, (96 * size / 640) ** 2]
        )
        for image_id in coco.getImgIds():
            info = coco.loadImgs(image_id)[0]
            assert (paths[split]["images"] / info["file_name"]).is_file()
            covered = np.zeros((info["height"], info["width"]), int)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
                mask = coco.annToMask(ann)
                ys, xs = np.nonzero(mask)
                assert ann["iscrowd"] == 0 and ann["area"] == mask.sum() > 0
                assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                covered += mask
            assert covered.max() <= 1, "visible parts of objects must not overlap"


def test_shapes_has_classes_and_area_spread(smoke_root):
    coco = load_coco(data.dataset_paths("shapes_smoke", smoke_root)["train"]["annotations"])
    assert [c["id"] for c in coco.dataset["categories"]] == [1, 2, 3, 4, 5]
    small, medium = coco.dataset["info"]["segbench"]["area_thresholds"]
    areas = np.array([a["area"] for a in coco.dataset["annotations"]])
    assert (areas < small).any() and ((areas >= small) & (areas < medium)).any() and (areas >= medium).any()


def test_keypoints_follow_coco_conventions(smoke_root):
    coco = load_coco(data.dataset_paths("keypoints_smoke", smoke_root)["train"]["annotations"])
    (category,) = coco.dataset["categories"]
    assert category["name"] == "person" and category["keypoints"] == COCO_KEYPOINTS
    assert len(category["skeleton"]) == 19 and all(
        1 <= i <= 17 for edge in category["skeleton"] for i in edge
    )
    flags = []
    for ann in coco.dataset["annotations"]:
        kp = np.array(ann["keypoints"], float).reshape(17, 3)
        assert len(ann["keypoints"]) == 51 and ann["num_keypoints"] == int((kp[:, 2] > 0).sum()) > 0
        assert set(kp[:, 2]) <= {0, 1, 2}
        assert (kp[kp[:, 2] == 0, :2] == 0).all()
        labelled = kp[kp[:, 2] > 0]
        assert ((labelled[:, :2] >= -0.5) & (labelled[:, :2] < 63.5)).all()
        flags += kp[:, 2].tolist()
    assert 2 in flags


def test_em_stack_is_isbi_format(smoke_root):
    paths = data.dataset_paths("em_smoke", smoke_root)
    with tifffile.TiffFile(paths["volume"]) as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZYX" and len(tif.pages) == 4
    volume, labels = tifffile.imread(paths["volume"]), tifffile.imread(paths["labels"])
    assert volume.dtype == labels.dtype == np.uint8 and volume.shape == labels.shape == (4, 96, 96)
    assert set(np.unique(labels)) == {0, 255}
    assert 0.6 < (labels == 255).mean() < 0.9  # the real stack: 78 % cell
    # A smoothed-intensity threshold, even at its best level, must be clearly imperfect.
    smoothed = ndimage.gaussian_filter(volume.astype(float), (0, 2, 2))
    best = min(((smoothed > t) != (labels == 255)).mean() for t in range(0, 256, 4))
    assert best > 0.05


@pytest.mark.parametrize("name", ["phc_smoke", "hela_smoke"])
def test_cells_are_ctc_format(smoke_root, name):
    (sequence,) = data.dataset_paths(name, smoke_root)["sequences"]
    assert sorted(p.name for p in sequence["images"].iterdir()) == [f"t{t:03d}.tif" for t in range(4)]
    assert sorted(p.name for p in sequence["gt_seg"].iterdir()) == [f"man_seg{t:03d}.tif" for t in range(4)]
    touching = False
    for t in range(4):
        image = tifffile.imread(sequence["images"] / f"t{t:03d}.tif")
        labels = tifffile.imread(sequence["gt_seg"] / f"man_seg{t:03d}.tif")
        assert (
            image.dtype == np.uint8 and labels.dtype == np.uint16 and image.shape == labels.shape == (96, 96)
        )
        ids = np.unique(labels)
        assert ids[0] == 0 and list(ids[1:]) == list(range(1, len(ids)))
        for k in ids[1:]:
            assert ndimage.label(labels == k)[1] == 1, f"cell {k} of frame {t} is not one connected piece"
        horizontal = (labels[:, 1:] != labels[:, :-1]) & (labels[:, 1:] > 0) & (labels[:, :-1] > 0)
        touching |= bool(horizontal.any())
    assert touching


def test_same_seed_gives_identical_bytes_and_another_seed_differs(smoke_root, tmp_path):
    for name in SMOKE:
        again = data.prepare(name, tmp_path / "same", seed=0)
        assert file_hashes(again) == file_hashes(data.dataset_dir(name, smoke_root)), name
        other = data.prepare(name, tmp_path / "other", seed=1)
        assert file_hashes(other) != file_hashes(again), name


def test_prepare_is_idempotent_and_repairs(tmp_path, monkeypatch):
    first = data.prepare("em_smoke", tmp_path)
    manifest = data.read_manifest(first)
    assert manifest["seed"] == 0 and set(manifest["files"]) == {"train-volume.tif", "train-labels.tif"}

    def fail(*args, **kwargs):
        raise AssertionError("a complete dataset must not be regenerated")

    monkeypatch.setattr(synthetic.em, "generate", fail)
    assert data.prepare("em_smoke", tmp_path) == first
    monkeypatch.undo()
    (first / "train-labels.tif").unlink()
    data.prepare("em_smoke", tmp_path)
    assert data.verify("em_smoke", tmp_path)["files"] == manifest["files"]


def test_interrupted_generation_leaves_nothing_complete(tmp_path, monkeypatch):
    real_generate = synthetic.cells.generate

    def interrupted(out_dir, params, seed):
        real_generate(out_dir, params, seed)  # files written, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic.cells, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.prepare("phc_smoke", tmp_path)
    assert [p for p in tmp_path.iterdir() if p.suffix != ".lock"] == []  # the dataset's lock may stay
    with pytest.raises(InputError, match="segbench data prepare phc_smoke"):
        data.dataset_paths("phc_smoke", tmp_path)

    monkeypatch.undo()
    complete = data.prepare("phc_smoke", tmp_path)
    before = file_hashes(complete)
    monkeypatch.setattr(synthetic.cells, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.prepare("phc_smoke", tmp_path, force=True)
    assert file_hashes(complete) == before  # a failed regeneration keeps the old, complete dataset
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == ["phc_smoke"]


def test_verify_detects_a_changed_file(tmp_path):
    root = data.prepare("hela_smoke", tmp_path)
    target = root / "01_GT" / "SEG" / "man_seg000.tif"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="man_seg000.tif does not match"):
        data.verify("hela_smoke", tmp_path)
