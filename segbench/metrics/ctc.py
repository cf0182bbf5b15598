"""Cell Tracking Challenge SEG measure (U-Net Table 2 "IOU") and a plain foreground IoU beside it.

SEG (Maska et al., the CTC's definition): for every reference (ground-truth) object R, the predicted object
S with |R n S| > 0.5 |R| (at most one can qualify) gives J = |R n S| / |R u S|; no such S gives 0; SEG is the
mean of J over all reference objects (of all frames). Objects are the nonzero labels of instance label maps;
a 3D input is a stack of 2D frames (2D + t, as PhC-C2DH-U373 and DIC-C2DH-HeLa), each labelled on its own,
unless ``per_slice=False`` (then labels are 3D objects).

The foreground IoU is |P n G| / |P u G| of the nonzero pixels of the whole stack (not SEG; 1.0 when both
are empty).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from segbench.errors import InputError


def _instances(arr: Any, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.size == 0:
        raise InputError(
            f"{name}: empty stack (shape {a.shape}); pass a non-empty 2D or 3D instance label map"
        )
    if a.ndim not in (2, 3):
        raise InputError(
            f"{name}: {a.ndim}-D array of shape {a.shape}; expected a 2D or 3D (T, Y, X) label map"
        )
    if a.dtype.kind == "b":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise InputError(
                f"{name}: non-integer values; expected an integer instance label map (0 = background)"
            )
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise InputError(f"{name}: unsupported dtype {a.dtype}; expected an integer instance label map")
    if a.dtype.kind == "i" and a.min() < 0:
        raise InputError(f"{name}: negative labels; expected an instance label map with 0 = background")
    return a


def _frames(a: np.ndarray, per_slice: bool) -> list[np.ndarray]:
    if a.ndim == 2 or not per_slice:
        return [a]
    return list(a)


def _frame_seg(gt: np.ndarray, pred: np.ndarray) -> tuple[float, int, int]:
    """(sum of J over reference objects, number of reference objects, number matched) for one frame."""
    g_vals, g_inv = np.unique(gt.ravel(), return_inverse=True)
    p_vals, p_inv = np.unique(pred.ravel(), return_inverse=True)
    g_fg = g_vals != 0
    n_ref = int(g_fg.sum())
    if n_ref == 0:
        return 0.0, 0, 0
    g_size = np.bincount(g_inv, minlength=g_vals.size)
    p_size = np.bincount(p_inv, minlength=p_vals.size)
    both = g_fg[g_inv] & (p_vals != 0)[p_inv]
    pair = g_inv[both].astype(np.int64) * p_vals.size + p_inv[both]
    keys, inter = np.unique(pair, return_counts=True)
    gi, pj = keys // p_vals.size, keys % p_vals.size
    ok = 2 * inter > g_size[gi]  # |R n S| > 0.5 |R|, exactly in integers
    jac = inter[ok] / (g_size[gi[ok]] + p_size[pj[ok]] - inter[ok])
    return float(jac.sum()), n_ref, int(ok.sum())


def seg_metrics(
    pred: Any,
    gt: Any,
    *,
    per_slice: bool = True,
    label_pred: bool = False,
    pred_name: str = "prediction",
    gt_name: str = "ground truth",
) -> dict[str, Any]:
    """SEG and foreground IoU of an instance label map ``pred`` against the reference ``gt``.

    Returns ``seg`` (mean Jaccard over reference objects; 0.0 when there is none, as py-ctcmetrics does),
    ``iou`` (plain foreground IoU, not SEG), ``objects`` (reference objects), ``matched`` (objects with a
    qualifying predicted object). ``label_pred``: ``pred`` is a binary mask; its 4-connected components
    (per frame) become the predicted objects.
    """
    g = _instances(gt, gt_name)
    p = np.asarray(pred)
    if p.shape != g.shape:
        raise InputError(
            f"{pred_name}: shape {p.shape} differs from {gt_name} shape {g.shape}; "
            "pass label maps of the same (T, Y, X) shape"
        )
    p = _instances(p, pred_name)
    if label_pred:
        p = _label_binary(p > 0, per_slice)
    total, objects, matched = 0.0, 0, 0
    for gf, pf in zip(_frames(g, per_slice), _frames(p, per_slice), strict=True):
        s, n, m = _frame_seg(gf, pf)
        total, objects, matched = total + s, objects + n, matched + m
    return {
        "seg": total / objects if objects else 0.0,
        "iou": foreground_iou(p, g),
        "objects": objects,
        "matched": matched,
    }


def seg_score(pred: Any, gt: Any, *, per_slice: bool = True) -> float:
    """The CTC SEG measure alone (see :func:`seg_metrics`)."""
    return seg_metrics(pred, gt, per_slice=per_slice)["seg"]


def foreground_iou(pred: Any, gt: Any) -> float:
    """Plain foreground IoU |P n G| / |P u G| of the nonzero pixels (NOT the SEG measure); 1.0 if both empty."""
    p = np.asarray(pred) != 0
    g = np.asarray(gt) != 0
    union = np.count_nonzero(p | g)
    return 1.0 if union == 0 else np.count_nonzero(p & g) / union


def _label_binary(mask: np.ndarray, per_slice: bool) -> np.ndarray:
    four = ndimage.generate_binary_structure(2, 1)
    if mask.ndim == 2 or not per_slice:
        structure = four if mask.ndim == 2 else ndimage.generate_binary_structure(3, 1)
        return ndimage.label(mask, structure=structure)[0]
    return np.stack([ndimage.label(m, structure=four)[0] for m in mask])
