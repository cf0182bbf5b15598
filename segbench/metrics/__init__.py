"""Metrics: ISBI 2012 (warping, Rand, pixel error, as the organisers defined them), cell-tracking SEG, COCO.

``isbi_metrics`` and ``seg_metrics`` are imported here; COCO evaluation lives in :mod:`segbench.metrics.coco`
(imported lazily, it pulls in pycocotools).
"""

from __future__ import annotations

from segbench.metrics.ctc import foreground_iou, seg_metrics, seg_score
from segbench.metrics.isbi import THRESHOLDS, isbi_metrics, pixel_error, rand_error, warping_error

__all__ = [
    "THRESHOLDS",
    "foreground_iou",
    "isbi_metrics",
    "pixel_error",
    "rand_error",
    "seg_metrics",
    "seg_score",
    "warping_error",
]
