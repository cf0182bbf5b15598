"""Forward + backward time of the RoI layers (:mod:`segbench.ops`) against torchvision's averaging RoIAlign.

Realistic RoI-head shapes: 2 images, 256 channels, 512 RoIs (``--rois-per-image`` 256 per image,
log-uniform sides of 16..512 px, clipped to the image), 7x7 output, ``--sampling-ratio`` 2. ``small`` is a
C4 map ([2, 256, 50, 50], stride 16, 800x800 images), ``large`` an FPN-P3-sized map ([2, 256, 100, 152],
stride 8, 800x1216 images); ``--features`` picks one or ``both``. Each layer runs forward, then backward of
a random output gradient; the median over ``--repeats`` (after one warm-up round, layers interleaved) is
reported with the ratio of fwd+bwd to torchvision's ``roi_align``. Acceptance: max-RoIAlign fwd+bwd within
3x of it.

As training runs them: under training's determinism settings (:func:`segbench.determinism.training_settings`,
recorded in ``settings.determinism``), and the baseline is torchvision's kernel called as segbench calls it
(:func:`segbench.ops.kernels.roi_align_kernel`; ``torchvision.ops.roi_align`` itself would time its Python
fallback on CUDA under deterministic mode, which training never runs).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from segbench import determinism
from segbench.bench.timing import resolve_device, sync, timing_entry
from segbench.errors import InputError

TITLE = "RoI layers: forward + backward vs torchvision's averaging roi_align"
OPTIONS: dict[str, Any] = {
    "features": "small",
    "rois_per_image": 256,
    "sampling_ratio": 2,
    "repeats": 5,
    "device": None,
    "threads": 1,
}
SIZES = {  # name: (N, C, H, W, stride)
    "small": (2, 256, 50, 50, 16),
    "large": (2, 256, 100, 152, 8),
}
TARGET = 3.0
BASELINE = "torchvision roi_align (avg)"
CHECKED = "roi_align max (ours)"
COLUMNS = [
    {"key": "features", "label": "features"},
    {"key": "shape", "label": "shape"},
    {"key": "rois", "label": "RoIs"},
    {"key": "layer", "label": "layer"},
    {"key": "fwd_ms", "label": "fwd ms", "format": ".1f"},
    {"key": "bwd_ms", "label": "bwd ms", "format": ".1f"},
    {"key": "total_ms", "label": "total ms", "format": ".1f"},
    {"key": "ratio", "label": "vs torchvision", "format": ".2f"},
]


def make_rois(n: int, per_image: int, img_h: int, img_w: int, gen: torch.Generator) -> torch.Tensor:
    k = n * per_image
    side = torch.exp(math.log(16) + torch.rand(k, 2, generator=gen) * (math.log(512) - math.log(16)))
    centre = torch.rand(k, 2, generator=gen) * torch.tensor([img_w, img_h])
    lo = (centre - side / 2).clamp(min=0)
    hi = torch.minimum(centre + side / 2, torch.tensor([img_w - 1.0, img_h - 1.0]))
    batch = torch.arange(n).repeat_interleave(per_image).float()[:, None]
    return torch.cat([batch, lo, hi], dim=1)


def layers(sr: int) -> dict[str, Callable]:
    from segbench.ops import roi_align, roi_pool, roi_warp
    from segbench.ops.kernels import roi_align_kernel

    return {
        BASELINE: lambda x, r, s: roi_align_kernel(x, r, (7, 7), s, sr, False),
        CHECKED: lambda x, r, s: roi_align(x, r, 7, s, sr, aggregation="max"),
        "roi_align max aligned (ours)": lambda x, r, s: roi_align(
            x, r, 7, s, sr, aggregation="max", aligned=True
        ),
        "roi_warp max (ours)": lambda x, r, s: roi_warp(x, r, 7, s, sr, aggregation="max"),
        # segbench's averaging layers: our sampler on the CPU with a gradient (as here), torchvision's kernels
        # otherwise (roi_warp: on the quantized boxes)
        "roi_align avg (segbench)": lambda x, r, s: roi_align(x, r, 7, s, sr, aggregation="avg"),
        "roi_warp avg (segbench)": lambda x, r, s: roi_warp(x, r, 7, s, sr, aggregation="avg"),
        "roi_pool (torchvision)": lambda x, r, s: roi_pool(x, r, 7, s),
    }


def bench(size: str, rois_per_image: int, sr: int, repeats: int, device: torch.device) -> list[dict]:
    n, c, h, w, stride = SIZES[size]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=gen).to(device).requires_grad_(True)
    rois = make_rois(n, rois_per_image, h * stride, w * stride, gen).to(device)
    scale = 1.0 / stride
    fns = layers(sr)
    grad_out = torch.randn(rois.shape[0], c, 7, 7, generator=gen).to(device)

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for rep in range(repeats + 1):
        for name, fn in fns.items():
            x.grad = None
            sync(device)
            t0 = time.perf_counter()
            out = fn(x, rois, scale)
            sync(device)
            t1 = time.perf_counter()
            out.backward(grad_out)
            sync(device)
            t2 = time.perf_counter()
            if rep > 0:  # the first round is a warm-up
                times[name].append((t1 - t0, t2 - t1))
    base = statistics.median(f + b for f, b in times[BASELINE])
    rows = []
    for name, ts in times.items():
        fwd = statistics.median(f for f, _ in ts)
        bwd = statistics.median(b for _, b in ts)
        total = statistics.median(f + b for f, b in ts)
        rows.append(
            {
                "features": size,
                "shape": [n, c, h, w],
                "rois": int(rois.shape[0]),
                "layer": name,
                "fwd_ms": fwd * 1e3,
                "bwd_ms": bwd * 1e3,
                "total_ms": total * 1e3,
                "ratio": total / base,
                "timings": [
                    timing_entry(f"{size} features: {part} (ms)", name, samples, reference=name == BASELINE)
                    for part, samples in (
                        ("forward", [f * 1e3 for f, _ in ts]),
                        ("backward", [b * 1e3 for _, b in ts]),
                        ("total", [(f + b) * 1e3 for f, b in ts]),
                    )
                ],
            }
        )
    return rows


def run(options: dict[str, Any]) -> dict[str, Any]:
    device = resolve_device(options["device"])
    features = str(options["features"])
    if features not in (*SIZES, "both"):
        raise InputError(f"--features {features!r}: expected one of {', '.join([*SIZES, 'both'])}")
    for key in ("rois_per_image", "sampling_ratio", "repeats"):
        if int(options[key]) < 1:
            raise InputError(f"--{key.replace('_', '-')} {options[key]}: must be >= 1")
    rows: list[dict] = []
    notes = []
    for size in list(SIZES) if features == "both" else [features]:
        with determinism.training_settings() as flags:
            part = bench(
                size,
                int(options["rois_per_image"]),
                int(options["sampling_ratio"]),
                int(options["repeats"]),
                device,
            )
        rows += part
        ratio = next(r["ratio"] for r in part if r["layer"] == CHECKED)
        verdict = "OK" if ratio <= TARGET else "OVER TARGET"
        notes.append(
            f"{size}: max-RoIAlign fwd+bwd = {ratio:.2f}x torchvision's avg roi_align "
            f"(target <= {TARGET:g}x): {verdict}"
        )
    notes.append(
        f"7x7 output, medians of {options['repeats']} rounds after one warm-up round, layers interleaved; "
        "deterministic algorithms on, as in training."
    )
    if device.type == "cpu":
        notes.append(
            "segbench's averaging layers run its sampler here (CPU, with a gradient): one embedding_bag per "
            "bin forward, the same tables transposed backward (segbench/ops/_sampling.py)."
        )
    return {
        "rows": rows,
        "columns": COLUMNS,
        "settings": {**options, "device": str(device), "target": TARGET, "determinism": flags},
        "notes": notes,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
