"""Consistency checks of COCO ground truth and detections, before pycocotools sees them.

pycocotools accepts inconsistent input silently (a duplicate annotation id overwrites another, an unknown
category is never matched, a negative box has a negative area) and returns a wrong AP with exit 0, or fails
deep inside with a ``TypeError``. Each check here raises a one-line :class:`InputError` that names the file
and the entry (annotation id, image id, or detection index).
"""

from __future__ import annotations

import math
from typing import Any

from segbench.errors import InputError


def rle_string_counts(text: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``); ``ValueError`` if the
    string is not one (a character outside ``0``..``o``, a truncated number, a negative run)."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise ValueError("truncated run length")
            c = ord(text[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {text[pos]!r} at {pos} is not an RLE digit")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise ValueError(f"run {len(counts)} has negative length {value}")
        counts.append(value)
    return counts


def _rle_problem(segm: dict[str, Any], size: tuple[int, int] | None) -> str | None:
    """Why an RLE segmentation is inconsistent (its size is not the image's, its counts do not decode to
    height x width pixels), or ``None``."""
    rle_size = segm.get("size")
    if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(isinstance(v, int) for v in rle_size)):
        return f"has an RLE without a [height, width] size (got {rle_size!r})"
    if size is not None and tuple(rle_size) != size:
        return f"has an RLE of size {rle_size}, but its image is {list(size)} (height, width)"
    counts = segm.get("counts")
    try:
        if isinstance(counts, str):
            runs = rle_string_counts(counts)
        elif isinstance(counts, list) and all(isinstance(v, int) and v >= 0 for v in counts):
            runs = counts
        else:
            raise ValueError("counts must be a string or a list of non-negative integers")
    except ValueError as exc:
        return f"has RLE counts that do not decode ({exc})"
    if sum(runs) != rle_size[0] * rle_size[1]:
        return f"has RLE counts that cover {sum(runs)} pixels, not {rle_size[0]} x {rle_size[1]}"
    return None


def _segm_problem(segm: Any, size: tuple[int, int] | None) -> str | None:
    if isinstance(segm, list):
        for poly in segm:
            if not isinstance(poly, list) or not all(isinstance(v, (int, float)) for v in poly):
                return "has a polygon that is not a list of numbers"
            if len(poly) < 6 or len(poly) % 2:
                return f"has a polygon with fewer than 3 points ({len(poly)} coordinates)"
        return None
    if isinstance(segm, dict):
        return _rle_problem(segm, size)
    return f"has a segmentation of type {type(segm).__name__} (expected polygons or an RLE)"


def _bbox_problem(bbox: Any) -> str | None:
    if not (
        isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)
    ):
        return f"has bbox {bbox!r}, not [x, y, width, height]"
    if not all(math.isfinite(v) for v in bbox):
        return f"has a non-finite bbox {list(bbox)}"
    if bbox[2] < 0 or bbox[3] < 0:
        return f"has a bbox with negative width or height {list(bbox)}"
    return None


def image_sizes(data: dict[str, Any], name: str) -> dict[Any, tuple[int, int] | None]:
    """image id -> (height, width) (``None`` where the entry gives no size); duplicate ids and sizes that
    are not positive integers are refused."""
    sizes: dict[Any, tuple[int, int] | None] = {}
    for img in data["images"]:
        if not isinstance(img, dict) or "id" not in img:
            raise InputError(f"{name}: an entry of 'images' has no id ({str(img)[:80]}); fix the file")
        if img["id"] in sizes:
            raise InputError(
                f"{name}: image id {img['id']!r} appears twice in 'images'; give each image its own id"
            )
        h, w = img.get("height"), img.get("width")
        if h is None and w is None:
            sizes[img["id"]] = None
            continue
        if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
            raise InputError(
                f"{name}: image {img['id']!r} has width {w!r} and height {h!r}; both must be "
                "positive integers (fix the image entry)"
            )
        sizes[img["id"]] = (h, w)
    return sizes


def category_ids(data: dict[str, Any], name: str) -> set[Any]:
    ids: set[Any] = set()
    for cat in data["categories"]:
        if not isinstance(cat, dict) or "id" not in cat:
            raise InputError(f"{name}: an entry of 'categories' has no id ({str(cat)[:80]}); fix the file")
        if cat["id"] in ids:
            raise InputError(
                f"{name}: category id {cat['id']!r} appears twice in 'categories'; give each "
                "category its own id"
            )
        ids.add(cat["id"])
    return ids


def check_ground_truth(data: dict[str, Any], name: str) -> None:
    """Every image, category and annotation of a COCO ground truth is consistent (see the module doc)."""
    sizes = image_sizes(data, name)
    cats = category_ids(data, name)
    seen: set[Any] = set()
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise InputError(f"{name}: annotation {k} is a {type(ann).__name__}, expected an object")
        ann_id = ann.get("id")
        where = f"{name}: annotation {ann_id!r}"
        if ann_id is None:
            raise InputError(f"{name}: annotation {k} has no id; give every annotation a unique id")
        if ann_id in seen:
            raise InputError(
                f"{where} appears twice (duplicate annotation id); give each annotation its own id"
            )
        seen.add(ann_id)
        if ann.get("image_id") not in sizes:
            raise InputError(
                f"{where} points at image_id {ann.get('image_id')!r}, which is not in 'images'; "
                "add the image or drop the annotation"
            )
        if ann.get("category_id") not in cats:
            raise InputError(
                f"{where} has category_id {ann.get('category_id')!r}, which is not in "
                "'categories'; add the category or fix the annotation"
            )
        problem = (_bbox_problem(ann["bbox"]) if "bbox" in ann else None) or (
            _segm_problem(ann["segmentation"], sizes[ann["image_id"]]) if "segmentation" in ann else None
        )
        if problem:
            fix = (
                "drop that polygon or regenerate the file"
                if "polygon" in problem
                else "fix or drop that entry"
            )
            raise InputError(f"{where} {problem}; {fix}")


def check_detections(dts: list[Any], name: str, gt: dict[str, Any], iou_type: str, field: str) -> None:
    """Every detection names a known image and category and has a well-formed box / segmentation."""
    sizes = {
        img.get("id"): (img.get("height"), img.get("width")) for img in gt["images"] if isinstance(img, dict)
    }
    cats = {cat.get("id") for cat in gt["categories"] if isinstance(cat, dict)}
    for k, d in enumerate(dts):
        if not isinstance(d, dict):
            raise InputError(f"{name}: detection {k} is a {type(d).__name__}, expected an object")
        missing = [f for f in ("image_id", "category_id", "score", field) if f not in d]
        if missing:
            raise InputError(
                f"{name}: detection {k} lacks {', '.join(missing)}; --iou-type {iou_type} needs "
                f"image_id, category_id, score and {field}"
            )
        where = f"{name}: detection {k} (image_id {d['image_id']!r})"
        if d["image_id"] not in sizes:
            raise InputError(
                f"{name}: detection {k} has image_id {d['image_id']!r}, not in the ground truth; "
                "evaluate against the annotation file the detections were made for"
            )
        if d["category_id"] not in cats:
            raise InputError(
                f"{where} has category_id {d['category_id']!r}, which is not in the ground truth's "
                "'categories'; map the detector's labels to the dataset's category ids"
            )
        score = d["score"]
        if not (isinstance(score, (int, float)) and math.isfinite(score)):
            raise InputError(f"{where} has score {score!r}; scores must be finite numbers")
        size = sizes[d["image_id"]]
        problem = None
        if "bbox" in d:
            problem = _bbox_problem(d["bbox"])
        if problem is None and "segmentation" in d:
            problem = _segm_problem(d["segmentation"], size if None not in size else None)
        if problem:
            raise InputError(f"{where} {problem}; fix or drop that detection")
