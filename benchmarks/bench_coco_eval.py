"""pycocotools vs faster-coco-eval on the shared COCO val2014 100-image subset, bbox and segm.

Times ``segbench.metrics.coco.evaluate`` end to end (JSON already loaded; index, evaluate, accumulate,
summarize) for each backend, reports the median seconds, the ratio, and the largest difference between the
two backends' statistics (expected <= 1e-12).

    .venv/bin/python benchmarks/bench_coco_eval.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from segbench.metrics.coco import evaluate
from segbench.paths import shared_data_root

FILES = {"bbox": "instances_val2014_fakebbox100_results.json", "segm": "instances_val2014_fakesegm100_results.json"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = shared_data_root()
    data = root / "coco_val2014_100" if root else None
    if data is None or not (data / "instances_val2014_100.json").is_file():
        print("shared data coco_val2014_100 absent (set SEGBENCH_SHARED_DATA); nothing to time", file=sys.stderr)
        return 1
    gt = json.loads((data / "instances_val2014_100.json").read_text())
    print(f"{'type':<5} {'pycocotools s':>14} {'faster s':>9} {'ratio':>6} {'max |diff|':>11}  AP (pycocotools)")
    for iou_type, name in FILES.items():
        dt = json.loads((data / name).read_text())
        medians, stats = {}, {}
        for backend in ("pycocotools", "faster"):
            evaluate(gt, dt, iou_type, backend=backend)  # warm-up: imports
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                stats[backend] = evaluate(gt, dt, iou_type, backend=backend)
                times.append(time.perf_counter() - start)
            medians[backend] = statistics.median(times)
        diff = max(abs(stats["faster"][k] - stats["pycocotools"][k]) for k in stats["pycocotools"])
        print(f"{iou_type:<5} {medians['pycocotools']:>14.3f} {medians['faster']:>9.3f} "
              f"{medians['pycocotools'] / medians['faster']:>6.2f} {diff:>11.2e}  {stats['pycocotools']['AP']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
