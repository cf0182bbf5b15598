"""Wall time of the three ISBI 2012 metrics (warping, Rand, pixel error) at the 10 thresholds on a full
30 x 512 x 512 stack.

Uses the shared ISBI 2012 training labels (``../shared/data/isbi2012`` or ``$SEGBENCH_SHARED_DATA``) with a
blurred-label prediction (Gaussian, sigma 2, per slice); without the shared data, a synthetic stack of the
same size (smoothed-noise cells). Target: under 10 s on a 2-core CPU. The first (warm-up) call on one slice
loads or compiles the numba kernels and is not timed.

    .venv/bin/python benchmarks/bench_isbi_metrics.py [--repeats 3] [--sigma 2.0] [--synthetic]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from scipy import ndimage

from segbench.metrics.isbi import _threads, isbi_metrics
from segbench.paths import shared_data_root


def load_stack(sigma: float, synthetic: bool) -> tuple[np.ndarray, np.ndarray, str]:
    root = shared_data_root()
    path = root / "isbi2012" / "train-labels.tif" if root else None
    if path is not None and path.is_file() and not synthetic:
        import tifffile

        labels = tifffile.imread(path)
        source = str(path)
    else:
        rng = np.random.default_rng(0)
        noise = rng.random((30, 512, 512))
        smooth = np.stack([ndimage.gaussian_filter(s, 6.0) for s in noise])
        labels = np.where(smooth > np.median(smooth) - 0.01, 255, 0).astype(np.uint8)
        source = "synthetic (smoothed noise), shared ISBI data absent" if not synthetic else "synthetic"
    pred = np.stack([ndimage.gaussian_filter(s.astype(np.float32) / 255, sigma) for s in labels])
    return pred.astype(np.float32), labels, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sigma", type=float, default=2.0, help="blur of the label-derived prediction")
    parser.add_argument("--synthetic", action="store_true", help="use a synthetic stack even if shared data exist")
    args = parser.parse_args()
    pred, labels, source = load_stack(args.sigma, args.synthetic)
    isbi_metrics(pred[:1], labels[:1])  # warm-up: numba kernels
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        res = isbi_metrics(pred, labels)
        times.append(time.perf_counter() - start)
    print(f"data: {source}; stack {labels.shape}; threads {_threads(labels.shape[0])} "
          f"(cpus {len(os.sched_getaffinity(0))})")
    print(f"warping_error {res['warping_error']:.6g} (t={res['best_threshold']['warping_error']:.1f}, "
          f"split {res['split_pixels']}, merge {res['merge_pixels']}); rand_error {res['rand_error']:.6g} "
          f"(t={res['best_threshold']['rand_error']:.1f}); pixel_error {res['pixel_error']:.6g} "
          f"(t={res['best_threshold']['pixel_error']:.1f})")
    print(f"all three metrics x 10 thresholds: median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s over {len(times)} runs (target < 10 s)")


if __name__ == "__main__":
    main()
