"""The bench page's spread of every timing: time_interleaved keeps min / median / max and the samples, the
page charts them (ours beside the reference) and lists them, and an older result file without max says
"not recorded" instead of failing. Hand-made result records: no suite runs, well under a second each."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from segbench.bench.report import build_bench_report
from segbench.bench.timing import spread, time_interleaved, timing_entry
from segbench.reporting.figures.bench import record_timings, row_timings

MASKRCNN_COLUMNS = [
    {"key": "run", "label": "run"},
    {"key": "train_ms_per_step", "label": "train ms/step", "format": ".1f"},
]


def result(suite: str, rows: list[dict], **extra: object) -> dict:
    """A result record as segbench.bench.run_suite writes it (the keys the page reads)."""
    return {
        "format": "segbench.bench/1",
        "suite": suite,
        "title": suite,
        "status": "ok",
        "device": "cpu",
        "device_name": "test cpu",
        "device_tag": "cpu",
        "threads": 1,
        "command": f"segbench bench {suite}",
        "settings": {},
        "columns": MASKRCNN_COLUMNS,
        "rows": rows,
        "notes": [],
        "provenance": {"git_commit": "abc1234", "created_utc": "2026-01-01T00:00:00Z"},
        **extra,
    }


def test_time_interleaved_keeps_min_median_max_and_every_sample() -> None:
    ticks = itertools.count()
    calls = {"a": lambda: next(ticks), "b": lambda: next(ticks)}
    out = time_interleaved(calls, warmup=1, iters=5)
    for name in calls:
        t = out[name]
        assert t["n"] == len(t["samples_ms"]) == 5
        assert t["min_ms"] == min(t["samples_ms"]) and t["max_ms"] == max(t["samples_ms"])
        assert t["min_ms"] <= t["median_ms"] <= t["max_ms"]
    assert next(ticks) == 2 + 10  # one warm-up round, then five rounds of both


def test_spread_and_timing_entry() -> None:
    assert spread([3.0, 1.0, 2.0], 1e3) == {
        "min": 1e3,
        "median": 2e3,
        "max": 3e3,
        "n": 3,
        "samples": [3e3, 1e3, 2e3],
    }
    entry = timing_entry("r50_fpn: train step (ms/step)", "torchvision", [4.0, 2.0], reference=True)
    assert entry["reference"] is True and entry["unit"] == "ms" and (entry["min"], entry["max"]) == (2.0, 4.0)
    with pytest.raises(ValueError):
        spread([])


def test_an_older_record_without_max_reads_its_median_and_min() -> None:
    row = {
        "run": "r50_fpn",
        "train_ms_per_step": 20.0,
        "train_min_ms_per_step": 18.0,
        "infer_ms_per_img": 5.0,
        "reference": {"train_ms_per_step": 22.0, "infer_ms_per_img": 6.0},
    }
    timings = row_timings("maskrcnn", row)
    assert [(t["impl"], t["reference"], t["min"], t["median"], t["max"]) for t in timings] == [
        ("segbench", False, 18.0, 20.0, None),
        ("segbench", False, None, 5.0, None),
        ("torchvision", True, None, 22.0, None),
        ("torchvision", True, None, 6.0, None),
    ]
    assert row_timings("unknown_suite", {"x_ms": 1.0}) == []
    assert [t["impl"] for t in row_timings("coco_eval", {"iou_type": "bbox", "faster_s": 1.0})] == ["faster"]


def test_bench_page_charts_and_lists_the_spread_and_says_not_recorded(tmp_path: Path) -> None:
    results, site = tmp_path / "results", tmp_path / "site"
    results.mkdir()
    new = [
        timing_entry("r50_fpn: train step (ms/step)", "segbench", [10.0, 12.0, 30.0]),
        timing_entry("r50_fpn: train step (ms/step)", "torchvision", [11.0, 13.0, 14.0], reference=True),
    ]
    records = {
        "maskrcnn-cpu.json": result(
            "maskrcnn", [{"run": "r50_fpn", "train_ms_per_step": 12.0, "timings": new}]
        ),
        "maskrcnn-cuda-old.json": result(
            "maskrcnn",
            [{"run": "r50_c4", "train_ms_per_step": 40.0, "train_min_ms_per_step": 39.0}],
            device_tag="cuda-old",
        ),
        "unet-cpu.json": result("unet", [], status="skipped", reason="no data"),
    }
    for name, record in records.items():
        (results / name).write_text(json.dumps(record))
    assert [len(record_timings(r)) for r in records.values()] == [2, 1, 0]
    page, count = build_bench_report(results, site)
    html = page.read_text()
    assert count == 3
    charts = sorted(p.name for p in (site / "figures").glob("*.png"))
    assert charts == ["maskrcnn-cpu.png", "maskrcnn-cuda-old.png"]  # none for the skipped suite
    assert all((site / "figures" / c).stat().st_size > 1000 for c in charts)
    assert html.count('<figure class="figure bench-chart"') == 2 and 'src="figures/maskrcnn-cpu.png"' in html
    assert "30 ms" in html and "14 ms" in html and "10 ms" in html  # max and min of the samples
    assert '<span class="tag">reference</span>' in html
    old = html.split('id="bench-maskrcnn-cuda-old"')[1]
    assert "39 ms" in old and "40 ms" in old and old.count("not recorded") == 2  # max and samples
