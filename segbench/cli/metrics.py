"""``segbench metrics``: ISBI 2012, cell-tracking SEG and COCO metrics on files.

    segbench metrics isbi --pred PRED.tif --labels LABELS.tif [--membrane-prob] [--json]
    segbench metrics seg  --pred PRED.tif --gt GT.tif [--json]
    segbench metrics coco --gt GT.json --dt DT.json --iou-type bbox|segm|keypoints [--backend ...] [--json]

Bad input (differing shapes, non-binary labels, predictions outside [0, 1] or NaN, an empty stack, an
unreadable TIFF, malformed COCO JSON) is a one-line error naming the file and the fix, exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from segbench.errors import InputError
from segbench.io import dumps

_ISBI_METRICS = ("warping_error", "rand_error", "pixel_error")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics",
        help="compute ISBI 2012, cell-tracking or COCO metrics on files",
        description="Compute metrics on files: ISBI 2012 warping/Rand/pixel error as the organisers defined "
        "them (isbi), the Cell Tracking Challenge SEG measure (seg), COCO AP/AR (coco).",
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    isbi = kinds.add_parser(
        "isbi",
        help="ISBI 2012 warping, Rand and pixel error (min over thresholds 0.0..0.9)",
        description="ISBI 2012 leaderboard metrics (minimum splits-and-mergers warping error, foreground-"
        "restricted Rand error, pixel error), each minimised over t = 0.0, 0.1, ..., 0.9 with its own "
        "best threshold. PRED: float in [0, 1], 1 = cell (the organisers' convention); LABELS: "
        "255 (or 1) = cell, 0 = membrane. 2D images count as one slice.",
    )
    isbi.add_argument(
        "--pred", required=True, help="prediction TIFF, float in [0, 1], 1 = cell (non-membrane)"
    )
    isbi.add_argument("--labels", required=True, help="ground-truth TIFF, 255 (or 1) = cell, 0 = membrane")
    isbi.add_argument(
        "--membrane-prob",
        action="store_true",
        help="PRED holds P(membrane); it is converted to 1 - P before scoring",
    )
    isbi.add_argument(
        "--rand-form",
        choices=("n2", "pairs"),
        default="n2",
        help="Rand error form: n2 (organisers' since 2015, default) or pairs (older C(n,2) counts)",
    )
    isbi.add_argument(
        "--warping-form",
        choices=("splits_mergers", "classic"),
        default="splits_mergers",
        help="warping error: splits_mergers (leaderboard, default) or classic (all mismatches)",
    )
    isbi.add_argument(
        "--thinned",
        action="store_true",
        help="also the challenge server's current scores, V_rand and V_info after border thinning "
        "(higher is better; Arganda-Carreras et al. 2015)",
    )
    isbi.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    isbi.set_defaults(func=run_isbi)

    seg = kinds.add_parser(
        "seg",
        help="Cell Tracking Challenge SEG (and plain foreground IoU)",
        description="SEG: mean Jaccard over reference objects R of the predicted object S with |R n S| > 0.5 |R| "
        "(0 when none). Inputs are instance label maps (0 = background); 3D stacks are 2D frames.",
    )
    seg.add_argument("--pred", required=True, help="predicted instance label map TIFF")
    seg.add_argument(
        "--gt", required=True, help="reference instance label map TIFF (e.g. *_GT/SEG/man_seg*.tif)"
    )
    seg.add_argument(
        "--label-pred",
        action="store_true",
        help="PRED is a binary mask: use its 4-connected components (per frame) as objects",
    )
    seg.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    seg.set_defaults(func=run_seg)

    coco = kinds.add_parser(
        "coco",
        help="COCO AP/AR through pycocotools (or faster-coco-eval)",
        description="COCO summary statistics by name, as fractions (-1 where undefined, as pycocotools).",
    )
    coco.add_argument("--gt", required=True, help="COCO annotation JSON (instances_*.json)")
    coco.add_argument("--dt", required=True, help="COCO results JSON (list of detections)")
    coco.add_argument("--iou-type", required=True, choices=("bbox", "segm", "keypoints"))
    coco.add_argument(
        "--backend",
        choices=("pycocotools", "faster"),
        default="pycocotools",
        help="pycocotools (reference, default) or faster (faster-coco-eval, same numbers)",
    )
    coco.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    coco.set_defaults(func=run_coco)


# --------------------------------------------------------------------------------------------------
def read_tiff(path: str, what: str) -> np.ndarray:
    """Read a TIFF stack, turning a missing, unreadable or corrupt file into a one-line InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: {what} not found; check the path")
    import tifffile

    log = logging.getLogger("tifffile")
    was_disabled = log.disabled
    log.disabled = True  # tifffile logs warnings on corrupt files; the error below says it in one line
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.asarray(tifffile.imread(p))
    except Exception as exc:  # tifffile raises many types on corrupt or truncated files
        msg = " ".join(str(exc).split())[:160]
        raise InputError(
            f"{p}: cannot read {what} as a TIFF ({type(exc).__name__}: {msg}); check the file is "
            "a complete, uncorrupted TIFF (re-export it)"
        ) from None
    finally:
        log.disabled = was_disabled
    if arr.size == 0:
        raise InputError(
            f"{p}: {what} is an empty stack (shape {arr.shape}, or no readable image data); "
            "write a non-empty 2D image or (Z, Y, X) stack"
        )
    return arr


def _print_json(obj: Any) -> None:
    print(dumps(obj, indent=2))


def run_isbi(args: argparse.Namespace) -> int:
    from segbench.metrics.isbi import isbi_metrics, validate_isbi_inputs

    pred = read_tiff(args.pred, "prediction")
    labels = read_tiff(args.labels, "labels")
    p, g = validate_isbi_inputs(
        pred, labels, pred_name=args.pred, labels_name=args.labels, membrane_prob=args.membrane_prob
    )
    res = isbi_metrics(
        p, g.view(np.uint8), rand_form=args.rand_form, warping_form=args.warping_form, labels_name=args.labels
    )
    if args.thinned:
        from segbench.metrics.isbi_thinned import thinned_metrics

        res["thinned"] = thinned_metrics(p, g.view(np.uint8))
    if args.json:
        _print_json(res)
        return 0
    print(
        f"ISBI 2012 metrics: {res['slices']} slice(s), rand form {res['rand_form']}, "
        f"warping form {res['warping_form']}"
    )
    print(f"{'metric':<14} {'error':>12} {'best t':>8}")
    for m in _ISBI_METRICS:
        print(f"{m:<14} {res[m]:>12.6f} {res['best_threshold'][m]:>8.1f}")
    print(
        f"split pixels {res['split_pixels']}, merge pixels {res['merge_pixels']} (at the warping best threshold)"
    )
    print(f"{'t':>4} " + " ".join(f"{m:>14}" for m in _ISBI_METRICS))
    for k, t in enumerate(res["thresholds"]):
        print(f"{t:>4.1f} " + " ".join(f"{res['per_threshold'][m][k]:>14.6f}" for m in _ISBI_METRICS))
    if args.thinned:
        th = res["thinned"]
        for m in ("v_rand", "v_info"):
            print(
                f"{m} (thinned) {th[m]:.6f} at t {th['best_threshold'][m]:.1f} "
                f"(split {th[m + '_split']:.6f}, merge {th[m + '_merge']:.6f}; higher is better)"
            )
    return 0


def run_seg(args: argparse.Namespace) -> int:
    from segbench.metrics.ctc import seg_metrics

    pred = read_tiff(args.pred, "prediction")
    gt = read_tiff(args.gt, "ground truth")
    res = seg_metrics(pred, gt, label_pred=args.label_pred, pred_name=args.pred, gt_name=args.gt)
    if res["objects"] == 0:
        raise InputError(
            f"{args.gt}: no reference objects (all pixels are 0); pass an instance label map "
            "with 0 = background"
        )
    if args.json:
        _print_json(res)
        return 0
    print(
        f"SEG (CTC)           {res['seg']:.6f}  ({res['matched']} of {res['objects']} reference objects matched)"
    )
    print(f"foreground IoU      {res['iou']:.6f}  (plain pixel IoU, not SEG)")
    return 0


def run_coco(args: argparse.Namespace) -> int:
    from segbench.metrics.coco import evaluate, format_table

    stats = evaluate(args.gt, args.dt, args.iou_type, backend=args.backend)
    if args.json:
        _print_json(stats)
        return 0
    print(f"COCO {args.iou_type} ({args.backend}), x 100")
    print(format_table(stats))
    return 0
