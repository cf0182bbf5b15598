"""Metrics: ISBI 2012 (warping, Rand, pixel error, as the organisers defined them; V_rand and V_info after
border thinning, the challenge's current scores), cell-tracking SEG, COCO.

``isbi_metrics`` and ``seg_metrics`` are available here (imported on first use: scipy, numba); COCO
evaluation lives in :mod:`segbench.metrics.coco` (pycocotools, imported when an evaluation runs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segbench.metrics.ctc import foreground_iou, seg_metrics, seg_score
    from segbench.metrics.isbi import THRESHOLDS, isbi_metrics, pixel_error, rand_error, warping_error
    from segbench.metrics.isbi_thinned import thinned_metrics

# name -> submodule; imported on first use (PEP 562), so that `segbench.metrics.coco_checks`, which the
# COCO loader needs, does not pull in scipy and numba (a bare GPU image may lack them: `segbench plan`).
_LAZY = {
    "THRESHOLDS": "isbi",
    "foreground_iou": "ctc",
    "isbi_metrics": "isbi",
    "pixel_error": "isbi",
    "rand_error": "isbi",
    "seg_metrics": "ctc",
    "seg_score": "ctc",
    "thinned_metrics": "isbi_thinned",
    "warping_error": "isbi",
}
__all__ = [
    "THRESHOLDS",
    "foreground_iou",
    "isbi_metrics",
    "pixel_error",
    "rand_error",
    "seg_metrics",
    "seg_score",
    "thinned_metrics",
    "warping_error",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
