"""Mask R-CNN Fig. 3: RoIAlign's bins and bilinear sampling points, drawn from the actual op.

A synthetic shapes image is turned into a one-channel conv feature map (edge energy, stride 8); an RoI
around one object is pooled by :func:`segbench.ops.roi_align` (2x2 bins, 2x2 samples per bin, no
half-pixel shift, as the paper). The sampling points are placed by the op's convention and checked: their
bilinear interpolation, averaged per bin, must equal the op's output, which the figure reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segbench.reporting.figures.base import FigureContext, new_figure, save_matplotlib

STRIDE = 8
IMAGE_SIZE = 96
OUTPUT = 2  # bins per side
SAMPLES = 2  # sampling points per bin side
SEED = 3


@dataclass(frozen=True)
class RoIAlignExample:
    image: np.ndarray  # H x W x 3 uint8
    features: np.ndarray  # h x w float64 (one channel)
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    points: np.ndarray  # [OUTPUT, OUTPUT, SAMPLES*SAMPLES, 2] (y, x) in feature coordinates
    pooled: np.ndarray  # OUTPUT x OUTPUT, from the op
    recomputed: np.ndarray  # OUTPUT x OUTPUT, bilinear interpolation of ``points`` averaged per bin


def synthetic_image() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A shapes image and the (image-pixel) bounding box of its largest object, shrunk off the pixel grid."""
    from segbench.data.synthetic.shapes import example_image

    image, objects = example_image(
        SEED, "val", 0, image_size=IMAGE_SIZE, objects_per_image=[3, 5], object_size=[30, 60]
    )
    _, mask = max(objects, key=lambda o: int(o[1].sum()))
    ys, xs = np.nonzero(mask)
    return image, (xs.min() + 0.3, ys.min() + 0.6, xs.max() + 0.8, ys.max() + 0.4)


def conv_features(image: np.ndarray) -> np.ndarray:
    """Edge energy (fixed Sobel convolutions on the grey image), average-pooled to stride 8: ``[1, 1, h, w]``."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    grey = torch.from_numpy(image.astype(np.float64).mean(axis=2) / 255.0)[None, None]
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
    gx = F.conv2d(grey, sobel[None, None], padding=1)
    gy = F.conv2d(grey, sobel.T[None, None], padding=1)
    return F.avg_pool2d(torch.sqrt(gx**2 + gy**2), STRIDE).numpy()


def sampling_points(box: tuple[float, float, float, float], scale: float) -> np.ndarray:
    """The op's sampling points (aligned=False): ``y = y1 + ph*bin_h + (iy + 0.5)*bin_h/g``."""
    x1, y1, x2, y2 = (v * scale for v in box)
    bin_h, bin_w = max(y2 - y1, 1.0) / OUTPUT, max(x2 - x1, 1.0) / OUTPUT
    pts = np.zeros((OUTPUT, OUTPUT, SAMPLES * SAMPLES, 2))
    for ph in range(OUTPUT):
        for pw in range(OUTPUT):
            for iy in range(SAMPLES):
                for ix in range(SAMPLES):
                    pts[ph, pw, iy * SAMPLES + ix] = (
                        y1 + ph * bin_h + (iy + 0.5) * bin_h / SAMPLES,
                        x1 + pw * bin_w + (ix + 0.5) * bin_w / SAMPLES,
                    )
    return pts


def bilinear(features: np.ndarray, y: float, x: float) -> float:
    """Bilinear interpolation with feature value ``f[j, i]`` at point ``(j, i)`` (inside the map)."""
    h, w = features.shape
    y0, x0 = min(int(np.floor(y)), h - 2), min(int(np.floor(x)), w - 2)
    ly, lx = y - y0, x - x0
    f = features
    return float(
        (1 - ly) * (1 - lx) * f[y0, x0]
        + (1 - ly) * lx * f[y0, x0 + 1]
        + ly * (1 - lx) * f[y0 + 1, x0]
        + ly * lx * f[y0 + 1, x0 + 1]
    )


def compute_example() -> RoIAlignExample:
    import torch

    from segbench.ops import roi_align

    image, box = synthetic_image()
    features = conv_features(image)
    rois = torch.tensor([[0.0, *box]], dtype=torch.float64)
    pooled = roi_align(
        torch.from_numpy(features),
        rois,
        OUTPUT,
        spatial_scale=1.0 / STRIDE,
        sampling_ratio=SAMPLES,
        aggregation="avg",
        aligned=False,
    )[0, 0].numpy()
    points = sampling_points(box, 1.0 / STRIDE)
    fmap = features[0, 0]
    recomputed = np.array(
        [
            [np.mean([bilinear(fmap, y, x) for y, x in points[ph, pw]]) for pw in range(OUTPUT)]
            for ph in range(OUTPUT)
        ]
    )
    return RoIAlignExample(image, fmap, box, points, pooled, recomputed)


def render_fig3(ctx: FigureContext) -> list[str]:
    ex = compute_example()
    h, w = ex.features.shape
    x1, y1, x2, y2 = (v / STRIDE for v in ex.box)
    fig = new_figure(13.0, 4.6)
    ax_img, ax_feat, ax_out = fig.subplots(1, 3, width_ratios=[1, 1.25, 0.8])

    ax_img.imshow(ex.image, interpolation="nearest")
    ax_img.add_patch(_rect(ex.box[0], ex.box[1], ex.box[2] - ex.box[0], ex.box[3] - ex.box[1], "yellow"))
    ax_img.set_title(f"synthetic image ({IMAGE_SIZE}x{IMAGE_SIZE}) and RoI", fontsize=9)
    ax_img.set_xticks([])
    ax_img.set_yticks([])

    ax_feat.imshow(ex.features, cmap="Blues", extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
    for j in range(h):
        ax_feat.axhline(j, color="0.35", ls="--", lw=0.6)
    for i in range(w):
        ax_feat.axvline(i, color="0.35", ls="--", lw=0.6)
    ax_feat.add_patch(_rect(x1, y1, x2 - x1, y2 - y1, "black", lw=2.0))
    for k in range(1, OUTPUT):
        ax_feat.plot([x1 + k * (x2 - x1) / OUTPUT] * 2, [y1, y2], color="black", lw=1.2)
        ax_feat.plot([x1, x2], [y1 + k * (y2 - y1) / OUTPUT] * 2, color="black", lw=1.2)
    pts = ex.points.reshape(-1, 2)
    ax_feat.scatter(pts[:, 1], pts[:, 0], s=28, color="crimson", zorder=4, label="sampling points")
    y, x = ex.points[0, 0, 0]
    for cy in (np.floor(y), np.floor(y) + 1):
        for cx in (np.floor(x), np.floor(x) + 1):
            ax_feat.annotate(
                "",
                xy=(x, y),
                xytext=(cx, cy),
                arrowprops={"arrowstyle": "->", "color": "darkorange", "lw": 1.2},
            )
    ax_feat.set_xlim(np.floor(x1) - 1.0, np.ceil(x2) + 1.0)
    ax_feat.set_ylim(np.ceil(y2) + 1.0, np.floor(y1) - 1.0)
    ax_feat.set_title(
        f"feature map (stride {STRIDE}, dashed grid: feature values) with RoI, "
        f"{OUTPUT}x{OUTPUT} bins\nand {SAMPLES}x{SAMPLES} bilinear samples per bin "
        "(arrows: one sample's 4 grid neighbours)",
        fontsize=8,
    )
    ax_feat.legend(loc="lower right", fontsize=7)
    ax_feat.set_xlabel(f"x (feature-map cells; 1 cell = {STRIDE} px)", fontsize=8)
    ax_feat.set_ylabel("y (feature-map cells)", fontsize=8)
    ax_feat.tick_params(labelsize=7)

    ax_out.imshow(ex.pooled, cmap="Blues", vmin=ex.features.min(), vmax=ex.features.max())
    for (ph, pw), value in np.ndenumerate(ex.pooled):
        ax_out.text(
            pw,
            ph,
            f"{value:.3f}",
            ha="center",
            va="center",
            fontsize=10,
            color="white" if value > ex.features.mean() else "black",
        )
    diff = float(np.abs(ex.pooled - ex.recomputed).max())
    ax_out.set_title(
        f"pooled output of segbench.ops.roi_align\n(max |op - drawn points| = {diff:.1e})", fontsize=8
    )
    ax_out.set_xticks([])
    ax_out.set_yticks([])
    fig.suptitle("RoIAlign (Mask R-CNN Fig. 3): no quantization of the RoI or its bins", fontsize=11)
    return save_matplotlib(fig, ctx.out_dir, "maskrcnn_fig3")


def _rect(x: float, y: float, width: float, height: float, colour: str, lw: float = 1.5):  # noqa: ANN202
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), width, height, fill=False, edgecolor=colour, lw=lw)
