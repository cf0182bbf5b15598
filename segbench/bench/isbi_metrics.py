"""Wall time of the three ISBI 2012 metrics (warping, Rand, pixel error) at the 10 thresholds on a full
30 x 512 x 512 stack.

Uses the shared ISBI 2012 training labels (``isbi2012/train-labels.tif`` under
:func:`segbench.paths.shared_data_root`) with a blurred-label prediction (Gaussian, ``--sigma`` 2 per
slice); without the shared data (or with ``--synthetic``), a synthetic stack of the same size (smoothed-noise
cells). ``--slices N`` keeps the first N slices (quick checks). Target: under 10 s on a 2-core CPU. The first
(warm-up) call on one slice loads or compiles the numba kernels and is not timed; then the median and the
minimum of ``--repeats`` calls are reported. ``--threads`` sets the metric's slice pool
(``SEGBENCH_METRIC_THREADS``; default: its own choice, min(CPUs, slices, 8)).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from segbench.bench.timing import time_interleaved, timing_entry
from segbench.errors import InputError

TITLE = "ISBI 2012 metrics: warping, Rand and pixel error at 10 thresholds"
OPTIONS: dict[str, Any] = {"repeats": 3, "sigma": 2.0, "synthetic": False, "slices": 30, "threads": None}
TARGET_S = 10.0
FULL_STACK = (30, 512, 512)
COLUMNS = [
    {"key": "data", "label": "data"},
    {"key": "stack", "label": "stack"},
    {"key": "metric_threads", "label": "metric threads"},
    {"key": "median_s", "label": "median s", "format": ".2f"},
    {"key": "min_s", "label": "min s", "format": ".2f"},
    {"key": "runs", "label": "runs"},
    {"key": "warping_error", "label": "warping error", "format": ".6g"},
    {"key": "rand_error", "label": "Rand error", "format": ".6g"},
    {"key": "pixel_error", "label": "pixel error", "format": ".6g"},
    {"key": "within_target", "label": f"< {TARGET_S:g} s"},
]


def load_stack(sigma: float, synthetic: bool, slices: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(prediction, labels, source) as in the module docstring."""
    from scipy import ndimage

    from segbench.paths import shared_data_root

    root = shared_data_root()
    path = root / "isbi2012" / "train-labels.tif" if root else None
    if path is not None and path.is_file() and not synthetic:
        import tifffile

        labels = tifffile.imread(path)[:slices]
        source = str(path)
    else:
        rng = np.random.default_rng(0)
        noise = rng.random((min(slices, FULL_STACK[0]), *FULL_STACK[1:]))
        smooth = np.stack([ndimage.gaussian_filter(s, 6.0) for s in noise])
        labels = np.where(smooth > np.median(smooth) - 0.01, 255, 0).astype(np.uint8)
        source = "synthetic" if synthetic else "synthetic (smoothed noise), shared ISBI data absent"
    pred = np.stack([ndimage.gaussian_filter(s.astype(np.float32) / 255, sigma) for s in labels])
    return pred.astype(np.float32), labels, source


@contextlib.contextmanager
def metric_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    if int(threads) < 1:
        raise InputError(f"--threads {threads}: must be >= 1")
    before = os.environ.get("SEGBENCH_METRIC_THREADS")
    os.environ["SEGBENCH_METRIC_THREADS"] = str(int(threads))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SEGBENCH_METRIC_THREADS", None)
        else:
            os.environ["SEGBENCH_METRIC_THREADS"] = before


def run(options: dict[str, Any]) -> dict[str, Any]:
    from segbench.metrics.isbi import _threads, isbi_metrics

    repeats, slices = int(options["repeats"]), int(options["slices"])
    if repeats < 1 or slices < 1:
        raise InputError(f"--repeats {repeats} / --slices {slices}: both must be >= 1")
    pred, labels, source = load_stack(float(options["sigma"]), bool(options["synthetic"]), slices)
    result: dict[str, Any] = {}
    with metric_threads(options["threads"]):
        threads = _threads(labels.shape[0])
        isbi_metrics(pred[:1], labels[:1])  # warm-up: numba kernels

        def call() -> None:
            result.update(isbi_metrics(pred, labels))

        timing = time_interleaved({"isbi": call}, warmup=0, iters=repeats)["isbi"]
    median_s, min_s = timing["median_ms"] / 1e3, timing["min_ms"] / 1e3
    full = tuple(labels.shape) == FULL_STACK
    row = {
        "data": source,
        "stack": "x".join(str(n) for n in labels.shape),
        "metric_threads": threads,
        "median_s": median_s,
        "min_s": min_s,
        "runs": repeats,
        **{m: result[m] for m in ("warping_error", "rand_error", "pixel_error")},
        "best_threshold": result["best_threshold"],
        "split_pixels": result["split_pixels"],
        "merge_pixels": result["merge_pixels"],
        "within_target": (median_s < TARGET_S) if full else None,
        "timings": [
            timing_entry(
                f"{'x'.join(str(n) for n in labels.shape)} stack, 3 metrics (s)",
                "segbench",
                [t / 1e3 for t in timing["samples_ms"]],
                unit="s",
            )
        ],
    }
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cpus = os.cpu_count() or 1
    notes = [
        f"all three metrics x 10 thresholds; target < {TARGET_S:g} s on a 2-core CPU for the full "
        f"{'x'.join(map(str, FULL_STACK))} stack (this machine: {cpus} CPUs)."
    ]
    if not full:
        notes.append("not the full stack: the target does not apply")
    return {
        "rows": [row],
        "columns": COLUMNS,
        "settings": {**options},
        "notes": notes,
        "device": "cpu",
        "threads": threads,
    }
