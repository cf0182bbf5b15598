"""COCO evaluation time: pycocotools against faster-coco-eval on the shared COCO val2014 100-image subset.

Times :func:`segbench.metrics.coco.evaluate` end to end (JSON already loaded; index, evaluate, accumulate,
summarize) for each backend and IoU type (bbox, segm), backends interleaved after one warm-up call each
(imports), and reports the median seconds, their ratio, and the largest difference between the two
backends' statistics (expected <= 1e-12). The data are ``coco_val2014_100`` under
:func:`segbench.paths.shared_data_root` (``../shared/data`` or ``$SEGBENCH_SHARED_DATA``); where they are
absent the suite records a skip with the reason.
"""

from __future__ import annotations

import json
from typing import Any

from segbench.bench.timing import time_interleaved, timing_entry
from segbench.errors import InputError

TITLE = "COCO evaluation: pycocotools vs faster-coco-eval (100 val2014 images)"
OPTIONS: dict[str, Any] = {"repeats": 5}
FILES = {
    "bbox": "instances_val2014_fakebbox100_results.json",
    "segm": "instances_val2014_fakesegm100_results.json",
}
GT_FILE = "instances_val2014_100.json"
BACKENDS = ("pycocotools", "faster")
THREADS = "1 (pycocotools), <= 8 (faster-coco-eval RLE IoU)"
COLUMNS = [
    {"key": "iou_type", "label": "IoU type"},
    {"key": "pycocotools_s", "label": "pycocotools s", "format": ".3f"},
    {"key": "faster_s", "label": "faster-coco-eval s", "format": ".3f"},
    {"key": "speedup", "label": "speed-up", "format": ".2f"},
    {"key": "max_abs_stat_difference", "label": "max |stat diff|", "format": ".1e"},
    {"key": "ap", "label": "AP (pycocotools)", "format": ".4f"},
]


def data_dir() -> Any:
    from segbench.paths import shared_data_root

    root = shared_data_root()
    return root / "coco_val2014_100" if root else None


def run(options: dict[str, Any]) -> dict[str, Any]:
    from segbench.metrics.coco import evaluate

    repeats = int(options["repeats"])
    if repeats < 1:
        raise InputError(f"--repeats {repeats}: must be >= 1")
    data = data_dir()
    base = {
        "columns": COLUMNS,
        "settings": {**options, "data": str(data) if data else None},
        "device": "cpu",
        "threads": THREADS,
    }
    if data is None or not (data / GT_FILE).is_file():
        return {
            **base,
            "rows": [],
            "status": "skipped",
            "reason": "shared data coco_val2014_100 absent (place ../shared/data or set SEGBENCH_SHARED_DATA)",
        }
    gt = json.loads((data / GT_FILE).read_text())
    rows = []
    for iou_type, name in FILES.items():
        dt = json.loads((data / name).read_text())
        stats: dict[str, dict[str, float]] = {}

        def call(backend: str, iou_type: str = iou_type, dt: list = dt, stats: dict = stats) -> None:
            stats[backend] = evaluate(gt, dt, iou_type, backend=backend)

        timings = time_interleaved({b: (lambda b=b: call(b)) for b in BACKENDS}, warmup=1, iters=repeats)
        seconds = {b: timings[b]["median_ms"] / 1e3 for b in BACKENDS}
        diff = max(abs(stats["faster"][k] - stats["pycocotools"][k]) for k in stats["pycocotools"])
        rows.append(
            {
                "iou_type": iou_type,
                "pycocotools_s": seconds["pycocotools"],
                "faster_s": seconds["faster"],
                "speedup": seconds["pycocotools"] / seconds["faster"],
                "max_abs_stat_difference": diff,
                "ap": stats["pycocotools"]["AP"],
                "images": len(gt.get("images", [])),
                "detections": len(dt),
                "timings": [
                    timing_entry(
                        f"{iou_type} evaluation (s)",
                        b,
                        [t / 1e3 for t in timings[b]["samples_ms"]],
                        unit="s",
                        reference=b == "pycocotools",
                    )
                    for b in BACKENDS
                ],
            }
        )
    notes = [
        f"medians of {repeats} interleaved calls per backend; speed-up = pycocotools s / faster-coco-eval s."
    ]
    return {**base, "rows": rows, "notes": notes}
