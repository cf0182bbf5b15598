"""The classical baseline beside the U-Net: Gaussian smoothing and one intensity threshold.

The threshold and its polarity (cells brighter or darker than the background) are the pair that maximises
the pixel F-score of the cell class on the training images. The output is a cell-probability-like map in
[0, 1] (the ISBI organisers' convention, 1 = cell): a logistic of the smoothed intensity centred on the
threshold, so the fitted threshold sits at 0.5 and the organisers' levels 0.1..0.9 sweep intensities
around it. Instances (cell tracking) are the 4-connected components of the map above 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from segbench.errors import InputError

FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


@dataclass
class SmoothedThreshold:
    """Smoothed-intensity threshold classifier; ``fit`` sets threshold, polarity and scale."""

    sigma_px: float = 2.0
    threshold: float | None = None
    polarity: int = 1  # +1: cell where smoothed > threshold; -1: where smoothed < threshold
    scale: float = 1.0  # logistic width (a quarter of the smoothed intensities' std)
    train_pixel_f: float | None = None
    bins: int = 256

    def smooth(self, image: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(image.astype(np.float32), self.sigma_px, mode="mirror")

    def fit(self, images: Sequence[np.ndarray], cell_masks: Sequence[np.ndarray]) -> SmoothedThreshold:
        """Choose the threshold maximising the pixel F-score of the cell class over all training pixels."""
        if not images or len(images) != len(cell_masks):
            raise InputError(
                f"SmoothedThreshold.fit: {len(images)} images vs {len(cell_masks)} masks; "
                "give one cell mask per training image"
            )
        smoothed = np.concatenate([self.smooth(img).ravel() for img in images])
        cells = np.concatenate([np.asarray(m, bool).ravel() for m in cell_masks])
        edges = np.linspace(smoothed.min(), smoothed.max(), self.bins + 1)
        cell_hist, _ = np.histogram(smoothed[cells], edges)
        other_hist, _ = np.histogram(smoothed[~cells], edges)
        best = (-1.0, 0.0, 1)
        for polarity, (cell_counts, other_counts) in (
            (1, (cell_hist, other_hist)),
            (-1, (cell_hist[::-1], other_hist[::-1])),
        ):
            # Predict "cell" for the bins at or beyond each candidate cut (in the polarity's direction).
            tp = np.cumsum(cell_counts[::-1])[::-1]
            fp = np.cumsum(other_counts[::-1])[::-1]
            fn = cells.sum() - tp
            f_score = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
            k = int(np.argmax(f_score))
            cut = edges[k] if polarity == 1 else edges[::-1][k]
            if f_score[k] > best[0]:
                best = (float(f_score[k]), float(cut), polarity)
        self.train_pixel_f, self.threshold, self.polarity = best
        self.scale = max(float(smoothed.std()) / 4.0, 1e-6)
        return self

    def cell_probability(self, image: np.ndarray) -> np.ndarray:
        """P(cell)-like map in [0, 1] (float32); 0.5 at the fitted threshold."""
        if self.threshold is None:
            raise InputError("SmoothedThreshold: call fit() (train the classical run) before predicting")
        z = self.polarity * (self.smooth(image) - self.threshold) / self.scale
        return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)

    def instances(self, image: np.ndarray) -> np.ndarray:
        """Instance labels: 4-connected components of the thresholded map."""
        labels, _ = ndimage.label(self.cell_probability(image) > 0.5, structure=FOUR_CONNECTED)
        return labels.astype(np.int32)

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SmoothedThreshold:
        return cls(**state)


def build_classical(cfg: dict[str, Any]) -> SmoothedThreshold:
    """The classical baseline of a resolved run config (``model``: method smoothed_threshold, sigma_px)."""
    model_cfg = cfg.get("model", {})
    method = model_cfg.get("method", "smoothed_threshold")
    if method != "smoothed_threshold":
        raise InputError(
            f"model.method={method!r} in the run config: the classical family implements "
            "'smoothed_threshold' only"
        )
    sigma = model_cfg.get("sigma_px", 2.0)
    if not isinstance(sigma, int | float) or sigma < 0:
        raise InputError(f"model.sigma_px={sigma!r} in the run config: expected a number >= 0")
    return SmoothedThreshold(sigma_px=float(sigma))
