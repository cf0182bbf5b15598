"""The records a run writes under its run directory for the report to read (``eval_curve.json`` while
training, the others in its evaluate step).

The contract between :mod:`segbench.engine` (writes) and :mod:`segbench.reporting` (reads): a figure
that shows something of a model (its heads, its tile geometry, its predictions) reads one of these files
and never builds a model or calls engine code. Each file is small and written atomically.

=========================  ============  =========================================================
file                       family        content
=========================  ============  =========================================================
``predictions_val.json``   maskrcnn      COCO result records per IoU type (``bbox``, ``segm``,
                                         ``keypoints``) on the validation split
``heads.json``             maskrcnn      ``{"run", "run_id", "rows"}``: the RoI heads of the trained
                                         model layer by layer (``describe_heads``: branch, layer,
                                         type, output_shape, params, shared_with_box)
``coco_details.json``      maskrcnn      per IoU type: ``per_category_AP`` (AP .50:.95 per class),
                                         ``precision_iou50`` / ``precision_iou75`` over ``recall``
                                         (mean over classes), ``ground_truth_per_category`` and
                                         ``detections_per_category`` (score >= 0.5)
``eval_curve.json``        maskrcnn      ``[{"iteration", "bbox": {"AP", "AP50", "AP75"}, "segm": ...,
                                         "keypoints": ...}, ...]``: val-split AP at the schedule's
                                         ``eval_points`` (written during training, the run's IoU
                                         types only; absent with ``eval_points: 0``)
``predictions_val.npz``    unet,         the first held-out image: arrays ``image``, ``prediction``
                           sliding_      (cell probability > 0.5), ``ground_truth``; and every
                           window        held-out image: ``images``, ``probabilities`` (P(cell),
                                         float16), ``ground_truths``, ``slice_index``, ``names``
                                         (:func:`segbench.engine.biomedical.save_held_out_predictions`;
                                         files written before these keys have only the first three)
``overlap_tile.json``      unet          ``{"run", "run_id", "input_tile", "output_size", "stride",
                                         "border"}``: the overlap-tile geometry evaluation used
=========================  ============  =========================================================
"""

from __future__ import annotations

PREDICTIONS_VAL = "predictions_val.json"
HEADS = "heads.json"
COCO_DETAILS = "coco_details.json"
EVAL_CURVE = "eval_curve.json"
CELL_EXAMPLE = "predictions_val.npz"
OVERLAP_TILE = "overlap_tile.json"


def predictions_file(split: str) -> str:
    """``predictions_<split>.json`` (the validation split's is :data:`PREDICTIONS_VAL`)."""
    return f"predictions_{split}.json"
