"""Forward + backward time of the RoI layers (segbench.ops) against torchvision's averaging RoIAlign.

Realistic RoI-head shapes: 2 images, 256 channels, 512 RoIs (256 per image, log-uniform sides of
16..512 px, clipped to the image), 7x7 output, sampling_ratio 2. ``small`` is a C4 map
([2, 256, 50, 50], stride 16, 800x800 images), ``large`` an FPN-P3-sized map ([2, 256, 100, 152],
stride 8, 800x1216 images). Each layer runs forward, then backward of a random output gradient; the
median over ``--repeats`` (after one warm-up, layers interleaved) is reported with the ratio of
fwd+bwd to torchvision's ``roi_align``. Acceptance: max-RoIAlign fwd+bwd within 3x of it.

    .venv/bin/python benchmarks/bench_roi_ops.py                       # small, 1 thread
    .venv/bin/python benchmarks/bench_roi_ops.py --size both --threads 2 --check
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torchvision

from segbench.ops import roi_align, roi_pool, roi_warp

SIZES = {  # name: (N, C, H, W, stride)
    "small": (2, 256, 50, 50, 16),
    "large": (2, 256, 100, 152, 8),
}
TARGET = 3.0


def make_rois(n: int, per_image: int, img_h: int, img_w: int, gen: torch.Generator) -> torch.Tensor:
    k = n * per_image
    side = torch.exp(math.log(16) + torch.rand(k, 2, generator=gen) * (math.log(512) - math.log(16)))
    centre = torch.rand(k, 2, generator=gen) * torch.tensor([img_w, img_h])
    lo = (centre - side / 2).clamp(min=0)
    hi = torch.minimum(centre + side / 2, torch.tensor([img_w - 1.0, img_h - 1.0]))
    batch = torch.arange(n).repeat_interleave(per_image).float()[:, None]
    return torch.cat([batch, lo, hi], dim=1)


def layers(sr: int) -> dict[str, Callable]:
    return {
        "torchvision roi_align (avg)": lambda x, r, s: torchvision.ops.roi_align(x, r, 7, s, sr),
        "roi_align max (ours)": lambda x, r, s: roi_align(x, r, 7, s, sr, aggregation="max"),
        "roi_align max aligned (ours)": lambda x, r, s: roi_align(x, r, 7, s, sr, aggregation="max", aligned=True),
        "roi_warp max (ours)": lambda x, r, s: roi_warp(x, r, 7, s, sr, aggregation="max"),
        "roi_warp avg (tv on quantized)": lambda x, r, s: roi_warp(x, r, 7, s, sr, aggregation="avg"),
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

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for rep in range(repeats + 1):
        for name, fn in fns.items():
            x.grad = None
            sync()
            t0 = time.perf_counter()
            out = fn(x, rois, scale)
            sync()
            t1 = time.perf_counter()
            out.backward(grad_out)
            sync()
            t2 = time.perf_counter()
            if rep > 0:  # the first round is a warm-up
                times[name].append((t1 - t0, t2 - t1))
    base = statistics.median(f + b for f, b in times["torchvision roi_align (avg)"])
    rows = []
    for name, ts in times.items():
        fwd = statistics.median(f for f, _ in ts)
        bwd = statistics.median(b for _, b in ts)
        total = statistics.median(f + b for f, b in ts)
        rows.append({"size": size, "shape": [n, c, h, w], "rois": int(rois.shape[0]), "layer": name,
                     "fwd_ms": fwd * 1e3, "bwd_ms": bwd * 1e3, "total_ms": total * 1e3, "ratio": total / base})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=[*SIZES, "both"], default="small")
    parser.add_argument("--rois-per-image", type=int, default=256)
    parser.add_argument("--sampling-ratio", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if max-RoIAlign is over {TARGET}x")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = list(SIZES) if args.size == "both" else [args.size]
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, device {device}, "
          f"threads {torch.get_num_threads()}, 7x7, sampling_ratio {args.sampling_ratio}, "
          f"median of {args.repeats}")
    rows: list[dict] = []
    ok = True
    for size in sizes:
        part = bench(size, args.rois_per_image, args.sampling_ratio, args.repeats, device)
        rows += part
        print(f"\nfeatures {part[0]['shape']}, {part[0]['rois']} RoIs")
        print(f"  {'layer':<32} {'fwd ms':>8} {'bwd ms':>8} {'total ms':>9} {'vs tv':>6}")
        for r in part:
            print(f"  {r['layer']:<32} {r['fwd_ms']:>8.1f} {r['bwd_ms']:>8.1f} {r['total_ms']:>9.1f} "
                  f"{r['ratio']:>5.2f}x")
        ratio = next(r["ratio"] for r in part if r["layer"] == "roi_align max (ours)")
        verdict = "OK" if ratio <= TARGET else "OVER TARGET"
        ok &= ratio <= TARGET
        print(f"  max-RoIAlign fwd+bwd = {ratio:.2f}x torchvision's avg roi_align (target <= {TARGET:g}x): {verdict}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": torch.get_num_threads(), "device": str(device), "rows": rows}, fh, indent=1)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
