"""Figures from a trained run's predictions: Mask R-CNN Figs. 2/5 (masks, boxes, class, score), Fig. 6
(overlapping objects: ground truth above the ResNet-101-FPN run's masks), Fig. 7 (keypoints, skeleton,
person mask) and U-Net Fig. 4 (cell segmentation results).

Mask R-CNN runs write ``predictions_val.json`` (``{"bbox": [...], "segm": [...], "keypoints": [...]}``, COCO
result records, see :mod:`segbench.records`); the images and categories come from the
run's dataset under the data root. Without such a run (or its data) the figure is skipped with a note.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from segbench.io import read_json
from segbench.records import CELL_EXAMPLE, PREDICTIONS_VAL
from segbench.registry import split_run_id
from segbench.reporting.figures.base import FigureContext, MissingInput, new_figure, plain, save_matplotlib

PREDICTIONS = PREDICTIONS_VAL
SCORE_THRESHOLD = 0.5
MAX_IMAGES = 4


def preferred_runs(figure: str) -> tuple[str, ...]:
    """The registry's runs for ``figure`` (``figures.<figure>.runs``), best model first: the paper shows
    its best model. Any other run with the needed predictions follows them."""
    from segbench.registry import figure_runs

    return tuple(run for run, _ in figure_runs(figure))


def run_name(run_dir: Path) -> str:
    """``results/<scale>/runs/r50_c4-seed2`` -> ``r50_c4``."""
    return split_run_id(run_dir.name)[0]


def shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it: a note on a committed page names no
    machine's folders."""
    from segbench.paths import REPO_ROOT

    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def find_predictions(
    ctx: FigureContext, iou_type: str, preferred: tuple[str, ...], *, only_preferred: bool = False
) -> tuple[Path, dict]:
    """The predictions file (and its content) of the first run with ``iou_type`` detections (with
    ``only_preferred``, of the ``preferred`` runs only: a figure of one dataset's runs)."""
    runs = sorted(ctx.runs_dir.glob(f"*/{PREDICTIONS}"))
    if only_preferred:
        runs = [path for path in runs if run_name(path.parent) in preferred]
    rank = {name: i for i, name in enumerate(preferred)}
    runs.sort(key=lambda p: (rank.get(run_name(p.parent), len(rank)), p.parent.name))
    for path in runs:
        content = read_json(path, "predictions")
        if isinstance(content, dict) and content.get(iou_type):
            return path, content
    raise MissingInput(
        f"no trained run with {iou_type} predictions ({PREDICTIONS}) under "
        f"{shown(ctx.runs_dir)}; train and evaluate a run first"
    )


def val_split(ctx: FigureContext, run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """(images directory, COCO annotation dict) of the run's validation split (at a cross-validation
    scale its fold's, ``fold<k>_val``, as the run was evaluated on)."""
    from segbench.data.registry import dataset_paths
    from segbench.errors import InputError

    record = read_json(run_dir / "config.json", "run config") if (run_dir / "config.json").is_file() else {}
    config = record.get("config", record)  # config.json holds the resolved config under "config"
    name = (config.get("dataset") or {}).get("name")
    split = f"fold{int(config['split']['fold'])}_val" if isinstance(config.get("split"), dict) else "val"
    if not name:
        from segbench.registry import resolve_run

        name = resolve_run(run_name(run_dir), ctx.scale)["dataset"]["name"]
    try:
        paths = dataset_paths(name, ctx.data_root or Path("data"))[split]
    except (InputError, KeyError) as exc:
        raise MissingInput(f"the images of dataset {name!r} are absent ({exc})") from None
    return paths["images"], read_json(paths["annotations"], "COCO annotations")


def by_image(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[int(record["image_id"])].append(record)
    return grouped


def score_threshold(grouped: dict[int, list[dict[str, Any]]], top: int = 3 * MAX_IMAGES) -> float:
    """``SCORE_THRESHOLD`` (0.5), or, for a weak model with no detection that confident, the score of its
    ``top``-th most confident detection, so the figure shows what the model finds (the title says which)."""
    scores = sorted((r["score"] for recs in grouped.values() for r in recs), reverse=True)
    if not scores or scores[0] >= SCORE_THRESHOLD:
        return SCORE_THRESHOLD
    return scores[min(top, len(scores)) - 1]


def chosen_images(grouped: dict[int, list[dict[str, Any]]], threshold: float = SCORE_THRESHOLD) -> list[int]:
    """Images with the most confident detections, as the paper picks examples (deterministic order)."""
    confident = {i: sum(r["score"] >= threshold for r in recs) for i, recs in grouped.items()}
    return sorted((i for i in confident if confident[i]), key=lambda i: (-confident[i], i))[:MAX_IMAGES]


def load_image(images_dir: Path, coco: dict[str, Any], image_id: int) -> np.ndarray:
    from PIL import Image

    file_name = next(im["file_name"] for im in coco["images"] if im["id"] == image_id)
    return np.asarray(Image.open(images_dir / file_name).convert("RGB"))


def decode(rle: dict[str, Any]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def overlay(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    out = image.astype(np.float64)
    out[mask] = (1 - alpha) * out[mask] + alpha * colour * 255
    return out.astype(np.uint8)


def _panel_grid(n: int):  # noqa: ANN202 - matplotlib axes
    if n == 0:
        raise MissingInput(
            "the run's predictions_val.json holds no detections to draw (an untrained or "
            "smoke-scale model); train longer or at a larger scale"
        )
    return panel_grid(n)


def panel_grid(n: int, columns: int = 3, size: float = 3.6):  # noqa: ANN201 - matplotlib axes
    """``n`` image panels in rows of at most ``columns`` (a long strip is unreadable once scaled to a page)."""
    cols = min(columns, n)
    rows = -(-n // cols)
    fig = new_figure(size * cols, (size + 0.3) * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def render_instances(ctx: FigureContext) -> list[str]:
    """Mask R-CNN Figs. 2/5: masks, boxes, classes and scores of the best trained run on val images."""
    return _render_instances(ctx, "maskrcnn_fig2_5", "Mask R-CNN results (Figs. 2/5)")


def render_em_instances(ctx: FigureContext) -> list[str]:
    """Table em_maskrcnn's runs on held-out crops of the EM stack (cells as instances), as Figs. 2/5."""
    return _render_instances(ctx, "em_maskrcnn_predictions", "Mask R-CNN on EM cells", only_preferred=True)


def _render_instances(
    ctx: FigureContext, figure: str, title: str, *, only_preferred: bool = False
) -> list[str]:
    from matplotlib.patches import Rectangle

    path, predictions = find_predictions(ctx, "segm", preferred_runs(figure), only_preferred=only_preferred)
    images_dir, coco = val_split(ctx, path.parent)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    segm, boxes = by_image(predictions["segm"]), by_image(predictions.get("bbox", []))
    threshold = score_threshold(segm)
    ids = chosen_images(segm, threshold)
    fig, axes = _panel_grid(len(ids))
    colours = np.random.default_rng(0).uniform(0.2, 1.0, (64, 3))
    for ax, image_id in zip(axes, ids, strict=True):
        image = load_image(images_dir, coco, image_id)
        shown = [(k, r) for k, r in enumerate(segm[image_id]) if r["score"] >= threshold]
        for n, (_, record) in enumerate(shown):
            image = overlay(image, decode(record["segmentation"]), colours[n % len(colours)])
        ax.imshow(image)
        for n, (k, record) in enumerate(shown):
            box = boxes[image_id][k]["bbox"] if k < len(boxes.get(image_id, [])) else None
            if box:
                ax.add_patch(
                    Rectangle(
                        (box[0], box[1]), box[2], box[3], fill=False, lw=1.2, ec=colours[n % len(colours)]
                    )
                )
                ax.text(
                    box[0],
                    box[1] - 1,
                    plain(f"{names.get(record['category_id'], '?')} {record['score']:.2f}"),
                    fontsize=6,
                    color="white",
                    va="bottom",
                    bbox={"fc": "black", "alpha": 0.5, "pad": 1},
                )
        ax.set_title(f"image {image_id}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        plain(f"{title}: run {path.parent.name}, held-out images, score >= {threshold:.2g}"),
        fontsize=10,
    )
    return save_matplotlib(fig, ctx.out_dir, figure)


def annotation_mask(annotation: dict[str, Any], height: int, width: int) -> np.ndarray:
    """A ground-truth instance mask from its COCO ``segmentation`` (polygons, or RLE in either form)."""
    from pycocotools import mask as mask_utils

    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        return decode(segmentation)
    return mask_utils.decode(rle).astype(bool)


def overlapping_pairs(annotations: list[dict[str, Any]]) -> int:
    """How many pairs of ground-truth instances of one image have overlapping boxes."""
    boxes = [a["bbox"] for a in annotations]
    return sum(
        1
        for i, (x, y, w, h) in enumerate(boxes)
        for (u, v, p, q) in boxes[i + 1 :]
        if min(x + w, u + p) > max(x, u) and min(y + h, v + q) > max(y, v)
    )


def render_overlaps(ctx: FigureContext) -> list[str]:
    """Fig. 6: the paper sets FCIS+++ (top) against Mask R-CNN ResNet-101-FPN (bottom) on overlapping
    objects, where FCIS shows systematic artifacts. FCIS is not reproduced here, so the top row is the
    ground truth: validation images with the most overlapping instances, then the run's masks on them."""
    path, predictions = find_predictions(ctx, "segm", preferred_runs("maskrcnn_fig6"))
    images_dir, coco = val_split(ctx, path.parent)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    truth = by_image([a for a in coco["annotations"] if not a.get("iscrowd")])
    segm = by_image(predictions["segm"])
    threshold = score_threshold(segm)
    candidates = [i for i in truth if any(r["score"] >= threshold for r in segm.get(i, []))]
    pairs = {i: overlapping_pairs(truth[i]) for i in candidates}
    ids = sorted(candidates, key=lambda i: (-pairs[i], i))[:MAX_IMAGES]
    if not ids:
        raise MissingInput(
            f"the run {path.parent.name} detects nothing on the validation images with ground truth; "
            "train longer or at a larger scale"
        )
    fig = new_figure(3.0 * len(ids), 6.9)
    axes = fig.subplots(2, len(ids), squeeze=False)
    colours = np.random.default_rng(0).uniform(0.2, 1.0, (64, 3))
    for column, image_id in enumerate(ids):
        image = load_image(images_dir, coco, image_id)
        rows = (
            ("ground truth", [(a, annotation_mask(a, *image.shape[:2])) for a in truth[image_id]]),
            (
                "Mask R-CNN",
                [(r, decode(r["segmentation"])) for r in segm[image_id] if r["score"] >= threshold],
            ),
        )
        for ax, (what, instances) in zip(axes[:, column], rows, strict=True):
            shown = image
            for n, (_, mask) in enumerate(instances):
                shown = overlay(shown, mask, colours[n % len(colours)])
            ax.imshow(shown)
            for n, (record, mask) in enumerate(instances):
                ys, xs = np.nonzero(mask)
                if len(xs):
                    ax.contour(mask, levels=[0.5], colors=[colours[n % len(colours)]], linewidths=0.8)
                    label = names.get(record["category_id"], "?")
                    if "score" in record:
                        label += f" {record['score']:.2f}"
                    top = (
                        ys.min() > 8
                    )  # room above the mask: label above it, else inside (not over the title)
                    ax.text(
                        xs.min(),
                        ys.min() - 1 if top else ys.min() + 1,
                        plain(label),
                        fontsize=6,
                        color="white",
                        va="bottom" if top else "top",
                        bbox={"fc": "black", "alpha": 0.5, "pad": 1},
                    )
            ax.set_title(
                f"{what}, image {image_id}"
                + (f" ({pairs[image_id]} overlapping pairs)" if what == "ground truth" else ""),
                fontsize=7,
            )
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        plain(
            f"Fig. 6: overlapping objects – ground truth (top) vs Mask R-CNN run {path.parent.name} "
            f"(bottom), score >= {threshold:.2g}"
        ),
        fontsize=9,
        wrap=True,  # a one-image figure (few val images with overlaps) is narrower than the title
    )
    return save_matplotlib(fig, ctx.out_dir, "maskrcnn_fig6")


def render_keypoints(ctx: FigureContext) -> list[str]:
    path, predictions = find_predictions(ctx, "keypoints", preferred_runs("maskrcnn_fig7"))
    images_dir, coco = val_split(ctx, path.parent)
    person = next((c for c in coco["categories"] if c.get("keypoints")), coco["categories"][0])
    skeleton = [(a - 1, b - 1) for a, b in person.get("skeleton", [])]
    keypoints, segm = by_image(predictions["keypoints"]), by_image(predictions.get("segm", []))
    threshold = score_threshold(keypoints)
    ids = chosen_images(keypoints, threshold)
    fig, axes = _panel_grid(len(ids))
    for ax, image_id in zip(axes, ids, strict=True):
        image = load_image(images_dir, coco, image_id)
        shown = [(k, r) for k, r in enumerate(keypoints[image_id]) if r["score"] >= threshold]
        masks = segm.get(image_id, [])
        for k, _ in shown:  # keypoint and mask records of one run come from the same detections, in order
            if k < len(masks):
                image = overlay(image, decode(masks[k]["segmentation"]), np.array([0.2, 0.6, 1.0]), 0.4)
        ax.imshow(image)
        for _, record in shown:
            xyv = np.asarray(record["keypoints"], dtype=np.float64).reshape(-1, 3)
            visible = xyv[:, 2] > 0  # v = 0: not labelled / not predicted (COCO)
            for a, b in skeleton:
                if max(a, b) < len(xyv) and visible[a] and visible[b]:
                    ax.plot(xyv[[a, b], 0], xyv[[a, b], 1], color="yellow", lw=1.2)
            ax.scatter(xyv[visible, 0], xyv[visible, 1], s=8, color="red", zorder=3)
        ax.set_title(f"image {image_id}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    masked = "with person masks" if segm else "(run predicts no masks)"
    fig.suptitle(
        plain(f"Keypoints and skeleton (Fig. 7) {masked}: run {path.parent.name}, score >= {threshold:.2g}"),
        fontsize=10,
    )
    return save_matplotlib(fig, ctx.out_dir, "maskrcnn_fig7")


def render_cells(ctx: FigureContext) -> list[str]:
    """U-Net Fig. 4 from ``predictions_val.npz`` (arrays ``image``, ``prediction``, ``ground_truth``)."""
    from segbench.registry import runs_of_family

    unet = set(runs_of_family("unet"))
    found = [p for p in sorted(ctx.runs_dir.glob(f"*/{CELL_EXAMPLE}")) if run_name(p.parent) in unet]
    if not found:
        raise MissingInput(
            "no U-Net run with predictions_val.npz (arrays image, prediction, ground_truth) under "
            f"{shown(ctx.runs_dir)}; evaluate a U-Net run first"
        )
    # one row per run (PhC-U373, DIC-HeLa, ...), one column per seed
    by_run: dict[str, list[Path]] = defaultdict(list)
    for path in found:
        by_run[run_name(path.parent)].append(path)
    columns = max(len(paths) for paths in by_run.values())
    found = [p for paths in by_run.values() for p in paths]
    fig, axes = panel_grid(len(found), columns=min(columns, 3))
    for ax, path in zip(axes, found, strict=True):
        with np.load(path) as data:
            image, prediction, truth = data["image"], data["prediction"] > 0, data["ground_truth"] > 0
        ax.imshow(image, cmap="gray")
        ax.contour(truth, levels=[0.5], colors="yellow", linewidths=0.8)
        ax.imshow(np.ma.masked_where(~prediction, prediction), cmap="cool", alpha=0.35)
        ax.set_title(plain(path.parent.name), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "U-Net Fig. 4: cell segmentation results – prediction (colour), ground truth (yellow outline)",
        fontsize=10,
    )
    return save_matplotlib(fig, ctx.out_dir, "unet_fig4")
