"""Loaders for the U-Net datasets, and the held-out splits used to evaluate on them.

- ISBI 2012 EM segmentation: ``train-volume.tif`` (uint8, S x H x W) and ``train-labels.tif``
  (255 = cell interior, 0 = membrane). The test labels are secret, so evaluation holds out training slices.
- Cell Tracking Challenge (PhC-C2DH-U373, DIC-C2DH-HeLa): ``<seq>/tNNN.tif`` frames and
  ``<seq>_GT/SEG/man_segNNN.tif`` 16-bit instance labels, present only for the annotated frames.
Every problem with a file raises a one-line :class:`InputError` naming the file and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from segbench.errors import InputError

FRAME_RE = re.compile(r"^t(\d+)\.tiff?$")
SEG_RE = re.compile(r"^man_seg(\d+)\.tiff?$")


@dataclass(frozen=True)
class LabelledImage:
    """One 2-D training/evaluation image with instance labels (0 = background)."""

    name: str
    image: np.ndarray  # H x W float32, normalised intensities
    instances: np.ndarray  # H x W int32 instance ids
    label_file: Path  # the file the labels came from (keys the weight-map cache)
    index: int  # slice index in label_file (0 for one image per file)


def read_tiff(path: Path, what: str) -> np.ndarray:
    """Read a TIFF, turning a missing or unreadable file into an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found; run `segbench data` for this dataset or fix the path")
    try:
        array = np.asarray(tifffile.imread(path))
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for a damaged file
        raise InputError(
            f"{path}: unreadable {what} ({type(exc).__name__}: {exc}); re-download or regenerate it"
        ) from None
    if array.size == 0:  # tifffile only warns about some damaged headers and returns nothing
        raise InputError(f"{path}: unreadable {what} (no image data); re-download or regenerate it")
    return array


def normalize_intensity(image: np.ndarray) -> np.ndarray:
    """uint8 -> [0, 1]; other types -> robust [0, 1] from the 1st and 99.8th percentiles (float32)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    low, high = np.percentile(image, (1.0, 99.8))
    return ((image.astype(np.float32) - low) / max(float(high - low), 1e-6)).astype(np.float32)


def load_isbi_stack(volume: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """The raw uint8 volume (S x H x W) and binary labels (S x H x W, values in {0, 255})."""
    images = read_tiff(volume, "ISBI volume")
    masks = read_tiff(labels, "ISBI labels")
    images, masks = (a[None] if a.ndim == 2 else a for a in (images, masks))
    if images.ndim != 3:
        raise InputError(f"{volume}: expected a S x H x W greyscale stack, got shape {images.shape}")
    if masks.shape != images.shape:
        raise InputError(
            f"{labels}: label shape {masks.shape} differs from volume shape {images.shape}; "
            "use the labels that belong to this volume"
        )
    values = np.unique(masks)
    if not set(values.tolist()) <= {0, 255}:
        raise InputError(
            f"{labels}: labels must be binary (255 = cell, 0 = membrane), found values "
            f"{values[:8].tolist()}; binarise them first"
        )
    return images, masks


def isbi_images(volume: Path, labels: Path) -> list[LabelledImage]:
    """ISBI slices with instances = 4-connected components of the cell class (the metric's objects)."""
    from segbench.data.weight_map import instances_from_binary

    images, masks = load_isbi_stack(volume, labels)
    return [
        LabelledImage(
            f"slice{i:02d}", normalize_intensity(img), instances_from_binary(mask == 255), Path(labels), i
        )
        for i, (img, mask) in enumerate(zip(images, masks, strict=True))
    ]


def ctc_frames(images_dir: Path, gt_seg_dir: Path) -> list[LabelledImage]:
    """The annotated frames of one Cell Tracking Challenge sequence (frames without SEG truth are skipped)."""
    images_dir, gt_seg_dir = Path(images_dir), Path(gt_seg_dir)
    for folder, what in ((images_dir, "image folder"), (gt_seg_dir, "SEG ground-truth folder")):
        if not folder.is_dir():
            raise InputError(f"{folder}: CTC {what} not found; run `segbench data` for this dataset")
    frames = {int(m.group(1)): p for p in images_dir.iterdir() if (m := FRAME_RE.match(p.name))}
    segs = {int(m.group(1)): p for p in gt_seg_dir.iterdir() if (m := SEG_RE.match(p.name))}
    if not segs:
        raise InputError(f"{gt_seg_dir}: no man_segNNN.tif files; expected the CTC SEG ground truth here")
    out = []
    for index in sorted(segs):
        if index not in frames:
            raise InputError(
                f"{segs[index]}: no frame t{index:03d}.tif in {images_dir}; the SEG file must match a frame"
            )
        image = read_tiff(frames[index], "CTC frame")
        labels = read_tiff(segs[index], "CTC SEG label image")
        if image.ndim != 2 or labels.shape != image.shape:
            raise InputError(
                f"{segs[index]}: labels {labels.shape} vs frame {image.shape}; expected two "
                "2-D images of the same size"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise InputError(f"{segs[index]}: SEG labels must be integer instance ids, got {labels.dtype}")
        out.append(
            LabelledImage(
                f"{images_dir.name}/t{index:03d}",
                normalize_intensity(image),
                labels.astype(np.int32),
                segs[index],
                0,
            )
        )
    return out


def load_labelled_images(paths: dict) -> tuple[str, list[list[LabelledImage]]]:
    """From ``segbench.data.registry.dataset_paths`` output: the format (``isbi2012`` or ``ctc``) and the
    labelled images grouped by sequence (one group for ISBI)."""
    if "volume" in paths:
        return "isbi2012", [isbi_images(paths["volume"], paths["labels"])]
    if "sequences" in paths:
        return "ctc", [ctc_frames(s["images"], s["gt_seg"]) for s in paths["sequences"]]
    raise InputError(f"dataset paths {sorted(paths)}: expected 'volume'/'labels' (ISBI) or 'sequences' (CTC)")


@dataclass(frozen=True)
class Split:
    train: list[LabelledImage]
    held_out: list[LabelledImage]
    protocol: str


def held_out_slices(slices: int, fold: int, folds: int) -> tuple[int, int]:
    """Slices ``lo..hi-1`` that fold ``fold`` of ``folds`` contiguous blocks over a stack of ``slices``
    holds out (30 slices, 5 folds: fold k holds out 6k..6k+5); the one rule the U-Net's split and the
    Mask R-CNN instance crops (:mod:`segbench.data.derived.isbi_instances`) share."""
    if not 0 <= fold < folds or folds < 2 or slices < folds:
        raise InputError(
            f"split.fold={fold} of {folds} folds over {slices} slices: needs "
            "0 <= fold < folds and at least 2 slices"
        )
    bounds = np.linspace(0, slices, folds + 1).round().astype(int)
    return int(bounds[fold]), int(bounds[fold + 1])


def held_out_split(
    fmt: str, groups: list[list[LabelledImage]], fold: int | None = None, folds: int = 5
) -> Split:
    """The evaluation protocol (labels of the official test sets are secret).

    ISBI: ``folds`` contiguous blocks of slices (fewer for stacks of fewer slices); block ``fold``
    (default: the last, slices 24-29 of 30) is held out. CTC: with two or more annotated sequences the
    last one is held out (train on 01, test on 02); with one, its last 20% of annotated frames
    (at least one) are."""
    if fmt == "isbi2012":
        images = groups[0]
        folds = min(folds, len(images))
        fold = folds - 1 if fold is None else fold
        lo, hi = held_out_slices(len(images), fold, folds)
        return Split(
            images[:lo] + images[hi:],
            images[lo:hi],
            f"ISBI 2012 training stack, fold {fold + 1} of {folds} contiguous folds held out: "
            f"trained on {len(images) - (hi - lo)} slices, evaluated on slices {lo}-{hi - 1} "
            "(test labels are secret)",
        )
    groups = [g for g in groups if g]
    if not groups:
        raise InputError("CTC dataset: no annotated frames in any sequence")
    if len(groups) >= 2:
        train = [img for g in groups[:-1] for img in g]
        names = sorted({img.name.split("/")[0] for img in groups[-1]})
        return Split(
            train,
            groups[-1],
            f"CTC: trained on the annotated frames of the other sequences, "
            f"evaluated on sequence {names[0]} ({len(groups[-1])} annotated frames)",
        )
    frames = groups[0]
    if len(frames) < 2:
        raise InputError("CTC dataset: a single annotated frame cannot be split into training and evaluation")
    cut = len(frames) - max(1, round(0.2 * len(frames)))
    return Split(
        frames[:cut],
        frames[cut:],
        f"CTC: one sequence; trained on its first {cut} annotated "
        f"frames, evaluated on the last {len(frames) - cut}",
    )
