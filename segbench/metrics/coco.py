"""COCO evaluation (bbox, segm, keypoints) through pycocotools, with faster-coco-eval as an optional backend.

``evaluate(gt, dt, iou_type)`` returns the summary statistics by name, as fractions in [0, 1] (pycocotools'
``-1`` is kept where a statistic is undefined, e.g. no ground truth in an area range):

* bbox / segm: ``AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs ARm ARl`` (COCOeval.stats[0..11]);
* keypoints: ``AP AP50 AP75 APm APl AR AR50 AR75 ARm ARl`` (COCOeval.stats[0..9]).

``gt`` is a path to an annotation JSON file, its loaded dict, or a COCO object; ``dt`` a path to a results
JSON file, its loaded list, or a COCO results object. Loaded objects are copied, never modified. An empty
detection list gives all-zero statistics. Malformed input raises :class:`segbench.errors.InputError` naming
the file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Sequence
from typing import Any

from segbench.errors import InputError, SegbenchError
from segbench.io import read_json
from segbench.metrics.coco_checks import check_detections, check_ground_truth
from segbench.optional import require

IOU_TYPES = ("bbox", "segm", "keypoints")
BACKENDS = ("pycocotools", "faster")
DET_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
KPT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
_AREA_MAX = 1e5**2  # COCO's upper bound of the "all" and "large" area ranges
_DT_FIELD = {"bbox": "bbox", "segm": "segmentation", "keypoints": "keypoints"}


def stat_names(iou_type: str) -> tuple[str, ...]:
    """Names of the summary statistics of ``iou_type``, in COCOeval.stats order."""
    _check_choice(iou_type, IOU_TYPES, "iou_type")
    return KPT_STATS if iou_type == "keypoints" else DET_STATS


def _check_choice(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise InputError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _load_gt(gt: Any) -> tuple[dict, str]:
    if isinstance(gt, (str, os.PathLike)):
        name = str(gt)
        data = read_json(gt, "COCO annotation JSON")
    elif isinstance(gt, dict):
        name, data = "ground truth", copy.deepcopy(gt)
    elif hasattr(gt, "dataset") and isinstance(gt.dataset, dict):
        name, data = "ground truth", copy.deepcopy(gt.dataset)
    else:
        raise InputError(
            f"ground truth: unsupported type {type(gt).__name__}; pass a COCO annotation JSON path or dict"
        )
    if not isinstance(data, dict):
        raise InputError(
            f"{name}: not a COCO annotation file (top level is {type(data).__name__}, expected an "
            "object with images, annotations, categories)"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise InputError(
                f"{name}: not a COCO annotation file (missing list '{key}'); pass the instances_*.json "
                "ground truth, not a results file"
            )
    image_ids = {img.get("id") for img in data["images"] if isinstance(img, dict)}
    for ann in data["annotations"]:
        if not isinstance(ann, dict):
            continue  # reported by the evaluation itself
        if ann.get("image_id") not in image_ids:
            raise InputError(
                f"{name}: annotation {ann.get('id')} points at image_id {ann.get('image_id')!r}, "
                "which is not in 'images'; add the image or drop the annotation"
            )
        segm = ann.get("segmentation")
        if isinstance(segm, list) and any(isinstance(poly, list) and len(poly) < 6 for poly in segm):
            raise InputError(
                f"{name}: annotation {ann.get('id')} has a polygon with fewer than 3 points; drop "
                "that polygon or regenerate the file"
            )
    check_ground_truth(data, name)
    return data, name


def _load_dt(dt: Any) -> tuple[list, str]:
    if isinstance(dt, (str, os.PathLike)):
        name = str(dt)
        data = read_json(dt, "COCO results JSON")
    elif isinstance(dt, (list, tuple)):
        name, data = "detections", copy.deepcopy(list(dt))
    elif hasattr(dt, "dataset") and isinstance(dt.dataset, dict):
        name, data = "detections", copy.deepcopy(dt.dataset.get("annotations", []))
    else:
        raise InputError(
            f"detections: unsupported type {type(dt).__name__}; pass a COCO results JSON path or list"
        )
    if not isinstance(data, list):
        raise InputError(
            f"{name}: not a COCO results file (top level is {type(data).__name__}, expected a list "
            "of detections with image_id, category_id, score)"
        )
    return data, name


def _check_dt(dts: list, name: str, iou_type: str, gt: dict) -> None:
    check_detections(dts, name, gt, iou_type, _DT_FIELD[iou_type])


def evaluate(
    gt: Any,
    dt: Any,
    iou_type: str,
    backend: str = "pycocotools",
    *,
    area_thresholds: Sequence[float] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, float]:
    """COCO summary statistics by name (see the module docstring) for ``iou_type`` bbox, segm or keypoints.

    ``details``: a dict to fill with :func:`evaluation_details` (per-category AP, precision-recall curves,
    predicted vs ground-truth class counts) from the same evaluation.
    ``backend``: "pycocotools" (the reference) or "faster" (faster-coco-eval; same numbers, faster).
    ``area_thresholds``: ``[small_max, medium_max]`` in px^2 replacing COCO's 32^2 and 96^2 for the
    small/medium/large buckets (for scaled-down synthetic datasets); ``None`` keeps COCO's.
    """
    _check_choice(iou_type, IOU_TYPES, "iou_type")
    _check_choice(backend, BACKENDS, "backend")
    area_rng = _area_ranges(iou_type, area_thresholds)
    gt_data, gt_name = _load_gt(gt)
    dts, dt_name = _load_dt(dt)
    _check_dt(dts, dt_name, iou_type, gt_data)
    names = stat_names(iou_type)
    if not dts:
        return {n: 0.0 for n in names}
    try:
        run = _run_pycocotools if backend == "pycocotools" else _run_faster
        ev = run(gt_data, dts, iou_type, area_rng)
        stats = ev.stats
        if details is not None:
            details.update(evaluation_details(ev, gt_data, dts))
    except SegbenchError:
        raise
    except Exception as exc:  # malformed entries surface as KeyError/TypeError/AssertionError deep inside
        raise InputError(
            f"{dt_name} / {gt_name}: COCO evaluation failed on malformed input "
            f"({type(exc).__name__}: {exc}); check both files follow the COCO format"
        ) from None
    return {n: float(s) for n, s in zip(names, stats[: len(names)], strict=True)}


def _area_ranges(iou_type: str, area_thresholds: Sequence[float] | None) -> list[list[float]] | None:
    if area_thresholds is None:
        return None
    try:
        small, medium = (float(v) for v in area_thresholds)
    except (TypeError, ValueError):
        raise InputError(
            f"area_thresholds must be two numbers [small_max, medium_max] in px^2; got {area_thresholds!r}"
        ) from None
    if not 0 < small < medium < _AREA_MAX:
        raise InputError(f"area_thresholds must satisfy 0 < small_max < medium_max; got {area_thresholds!r}")
    if iou_type == "keypoints":  # COCO's keypoint buckets: all, medium, large
        return [[0.0, _AREA_MAX], [small, medium], [medium, _AREA_MAX]]
    return [[0.0, _AREA_MAX], [0.0, small], [small, medium], [medium, _AREA_MAX]]


def _run_pycocotools(gt: dict, dts: list, iou_type: str, area_rng: list[list[float]] | None):
    COCO = require("pycocotools.coco", "COCO evaluation").COCO
    COCOeval = require("pycocotools.cocoeval", "COCO evaluation").COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        return _summarize(COCOeval(coco_gt, coco_gt.loadRes(dts), iou_type), area_rng)


def _run_faster(gt: dict, dts: list, iou_type: str, area_rng: list[list[float]] | None):
    faster = require("faster_coco_eval", "--backend faster", instead="use --backend pycocotools")
    COCO, COCOeval_faster = faster.COCO, faster.COCOeval_faster

    def quiet(*_args: Any, **_kwargs: Any) -> None:
        return None

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt, print_function=quiet)
        return _summarize(
            COCOeval_faster(coco_gt, coco_gt.loadRes(dts), iou_type, print_function=quiet), area_rng
        )


def _summarize(ev: Any, area_rng: list[list[float]] | None) -> Any:
    """evaluate/accumulate/summarize a COCOeval-like object (either backend), with our area ranges."""
    if area_rng is not None:
        ev.params.areaRng = area_rng
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev


def evaluation_details(ev: Any, gt: dict, dts: list, score_threshold: float = 0.5) -> dict[str, Any]:
    """What the summary hides, from an accumulated COCOeval: per-category AP (IoU .50:.95, all areas,
    the largest maxDets, as ``stats[0]`` per class), the precision-recall curves at IoU 0.50 and 0.75
    (101 recall points, mean over categories; -1 where a category has no ground truth), and how many
    detections scoring >= ``score_threshold`` each category got against its ground-truth count."""
    import numpy as np

    precision = np.asarray(ev.eval["precision"])  # [T iou, R recall, K category, A area, M maxDets]
    iou = [round(float(t), 2) for t in ev.params.iouThrs]
    cat_ids = [int(c) for c in ev.params.catIds]

    def mean_valid(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else -1.0

    per_category = {str(c): mean_valid(precision[:, :, k, 0, -1]) for k, c in enumerate(cat_ids)}
    curves = {
        f"precision_iou{int(round(t * 100))}": [
            mean_valid(precision[iou.index(t), r, :, 0, -1]) for r in range(precision.shape[1])
        ]
        for t in (0.5, 0.75)
        if t in iou
    }
    names = {int(c["id"]): c.get("name", str(c["id"])) for c in gt.get("categories", [])}
    gt_counts = {str(c): 0 for c in cat_ids}
    for ann in gt.get("annotations", []):
        if not ann.get("iscrowd", 0) and str(ann["category_id"]) in gt_counts:
            gt_counts[str(ann["category_id"])] += 1
    predicted = {str(c): 0 for c in cat_ids}
    for d in dts:
        if d.get("score", 0) >= score_threshold and str(d["category_id"]) in predicted:
            predicted[str(d["category_id"])] += 1
    return {
        "category_names": {str(c): names.get(c, str(c)) for c in cat_ids},
        "per_category_AP": per_category,
        "recall": [round(float(r), 2) for r in ev.params.recThrs],
        **curves,
        "ground_truth_per_category": gt_counts,
        "detections_per_category": predicted,
        "detection_score_threshold": score_threshold,
    }


def format_table(stats: dict[str, float]) -> str:
    """A readable two-column table of the statistics (x 100, as papers print them)."""
    lines = [f"{'stat':<6} {'value':>8}"]
    for k, v in stats.items():
        lines.append(f"{k:<6} {v * 100 if v >= 0 else v:>8.2f}")
    return "\n".join(lines)


__all__ = ["BACKENDS", "DET_STATS", "IOU_TYPES", "KPT_STATS", "evaluate", "format_table", "stat_names"]
