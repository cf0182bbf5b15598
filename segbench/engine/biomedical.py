"""Data of the biomedical families (U-Net, the classical baselines, the sliding-window CNN): the run's
dataset split into training and held-out images, input normalisation, and the held-out metrics of P(cell)
maps, so that every such family is scored exactly alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segbench.data.biomedical import LabelledImage, Split, held_out_split, load_labelled_images
from segbench.data.registry import dataset_paths
from segbench.errors import InputError
from segbench.io import write_with


def load_split(cfg: dict[str, Any], data_root: Path) -> tuple[str, Split]:
    """The dataset of a run config, split into training images and held-out evaluation images."""
    fmt, groups = load_labelled_images(dataset_paths(cfg["dataset"]["name"], Path(data_root)))
    split_cfg = cfg.get("split", {})
    return fmt, held_out_split(fmt, groups, fold=split_cfg.get("fold"), folds=split_cfg.get("folds", 5))


INPUT_NORMALIZATIONS = ("unit_range", "standardize")


def normalize_input(image: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """The network's input for a [0, 1] image: ``input.normalize`` ``unit_range`` keeps it,
    ``standardize`` (the default) maps each image to zero mean and unit variance.

    The paper does not say how intensities are scaled. Standardising matters on DIC images, whose cells
    differ from the background by relief, not by mean intensity: on hela_mini (800 iterations, seed 0)
    SEG is 0.000 with [0, 1] inputs and 0.125 standardised.
    """
    mode = cfg.get("input", {}).get("normalize", "standardize")
    if mode not in INPUT_NORMALIZATIONS:
        raise InputError(f"input key 'normalize': {mode!r} is not one of {', '.join(INPUT_NORMALIZATIONS)}")
    if mode == "unit_range":
        return image
    return ((image - image.mean()) / max(float(image.std()), 1e-6)).astype(np.float32)


def score_probability_maps(fmt: str, split: Split, cell_probability: list[np.ndarray]) -> dict[str, Any]:
    """Metrics of P(cell) maps of the held-out images: ``{"isbi": ...}`` or ``{"ctc": ...}``.

    ISBI: the organisers' errors of the held-out stack, its ``counts`` (pooled over folds by the tables),
    and ``per_slice``: for each held-out slice (``index`` in the stack, ``name``) its three errors at the
    thresholds the stack's errors use, with its counts there
    (:func:`segbench.metrics.isbi_pooled.slice_errors`); and ``thinned``: the challenge's current scores
    V_rand and V_info (thinned) of the held-out stack at their best thresholds, with the per-threshold
    ``sums`` that pool over folds (:func:`segbench.metrics.isbi_thinned.thinned_record`)."""
    held_out = [img.name for img in split.held_out]
    if fmt == "isbi2012":
        from segbench.metrics.isbi_pooled import isbi_metrics_with_counts  # counts: pooled over folds
        from segbench.metrics.isbi_thinned import thinned_record, thinned_stats

        labels = np.stack([np.where(img.instances > 0, 255, 0).astype(np.uint8) for img in split.held_out])
        pred = np.clip(np.stack(cell_probability), 0.0, 1.0).astype(np.float32)
        scored = isbi_metrics_with_counts(pred, labels, per_slice=True)
        slices = scored.pop("per_slice")
        return {
            "isbi": {
                **scored,
                "protocol": split.protocol,
                "held_out": held_out,
                "per_slice": [
                    {"index": img.index, "name": img.name, **errors}
                    for img, errors in zip(split.held_out, slices, strict=True)
                ],
                "thinned": thinned_record(thinned_stats(pred, labels)),
            }
        }
    from scipy import ndimage

    from segbench.metrics.ctc import seg_metrics

    four = ndimage.generate_binary_structure(2, 1)
    shapes = {img.instances.shape for img in split.held_out}
    if len(shapes) != 1:
        raise InputError(
            f"held-out frames have several sizes {sorted(shapes)}; evaluate one sequence at a time"
        )
    pred = np.stack([ndimage.label(p > 0.5, structure=four)[0] for p in cell_probability])
    gt = np.stack([img.instances for img in split.held_out])
    return {"ctc": {**seg_metrics(pred, gt), "protocol": split.protocol, "held_out": held_out}}


def save_held_out_predictions(
    path: Path, held_out: list[LabelledImage], cell_probability: list[np.ndarray]
) -> None:
    """The held-out images with their P(cell) maps and ground truth (``predictions_val.npz``,
    :data:`segbench.records.CELL_EXAMPLE`), written atomically, for the report's figures.

    Arrays: ``image``, ``prediction`` (P(cell) > 0.5, uint8) and ``ground_truth`` (cell = 1) of the first
    held-out image, as U-Net Fig. 4 reads them; and every held-out image: ``images`` (float16),
    ``probabilities`` (P(cell), float16: within 2.5e-4 of the scored float32 maps), ``ground_truths``
    (uint8, cell = 1), ``slice_index`` (index in its stack, :attr:`LabelledImage.index`) and ``names``
    (as ``metrics.json``'s ``held_out``). Images of several sizes keep the first one only."""
    if not held_out:
        return
    first, p0 = held_out[0], cell_probability[0]
    arrays = {
        "image": first.image.astype(np.float32),
        "prediction": (p0 > 0.5).astype(np.uint8),
        "ground_truth": (first.instances > 0).astype(np.uint8),
    }
    if len({img.image.shape for img in held_out}) == 1:
        arrays |= {
            "images": np.stack([img.image for img in held_out]).astype(np.float16),
            "probabilities": np.clip(np.stack(cell_probability), 0.0, 1.0).astype(np.float16),
            "ground_truths": np.stack([img.instances > 0 for img in held_out]).astype(np.uint8),
            "slice_index": np.array([img.index for img in held_out], dtype=np.int32),
            "names": np.array([img.name for img in held_out], dtype=str),
        }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez on a path would append ".npz"
            np.savez_compressed(fh, **arrays)

    write_with(path, write, "held-out predictions")
