"""The run zoo (``reports/<scale>/runs.html``, after detectron2's MODEL_ZOO) and the schedule summary of a
table page, both read from the run records ``results/<scale>/runs/<run>-seed<k>/``.

Every number comes from a committed file: the schedule and input size from ``config.json`` (the resolved
config holds ``schedule`` and ``input``), s/iter from ``train_log.jsonl`` (median of ``time``; older U-Net
logs name it ``seconds``), train and eval time from ``metrics.json`` / ``train_done.json`` provenance, the
metrics from ``metrics.json``, the validation AP over iterations from ``eval_curve.json`` (runs without
it show no curve). What a run did not record is shown as "not recorded", never estimated.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from segbench.formatting import MISSING, metric_kind, value_range
from segbench.paths import record_run_dir, runs_dir
from segbench.records import COCO_DETAILS, EVAL_CURVE
from segbench.registry import split_run_id
from segbench.reporting.view import RUN_FILES, url_between

NOT_RECORDED = "not recorded"
#: (metrics path, column label): the metrics a zoo row shows, in column order, each in its kind's unit
#: (:mod:`segbench.formatting`: COCO AP x 100).
ZOO_METRICS = (
    ("bbox.AP", "box AP"),
    ("segm.AP", "mask AP"),
    ("keypoints.AP", "kp AP"),
    ("isbi.pixel_error", "pixel error"),
    ("isbi.rand_error", "Rand error"),
    ("isbi.warping_error", "warping error"),
    ("ctc.seg", "SEG"),
    ("ctc.iou", "IoU"),
)
FAMILY_ORDER = ("maskrcnn", "unet", "classical")
FAMILY_TITLES = {
    "maskrcnn": "Mask R-CNN (and Faster R-CNN / keypoint variants)",
    "unet": "U-Net",
    "classical": "Classical baselines (no training loop)",
    "sliding_window": "Sliding-window CNN (the U-Net paper's ISBI baseline)",
}
#: Keys of a train_log record holding the seconds one iteration took (newest name first).
TIME_KEYS = ("time", "seconds")


def read_json_or_none(path: Path) -> dict[str, Any] | None:
    """A run file as a dict, or None when it is absent or not a JSON object (the zoo shows what exists)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_log(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def number(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )


def dig(doc: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def run_config(doc: dict[str, Any] | None) -> dict[str, Any]:
    """The resolved config of a config.json (``{"config": ..., "provenance": ...}``; a bare dict as is)."""
    if not doc:
        return {}
    inner = doc.get("config")
    return inner if isinstance(inner, dict) else doc


def schedule_of(config: dict[str, Any]) -> dict[str, Any]:
    """Iterations, batch and image size / tile of a resolved config (None where it has none)."""
    sched = config.get("schedule") if isinstance(config.get("schedule"), dict) else {}
    inp = config.get("input") if isinstance(config.get("input"), dict) else {}
    batch = sched.get("images_per_batch", sched.get("batch_size"))
    if inp.get("tile") is not None:
        size = f"tile {inp['tile']}"
    elif inp.get("min_size") is not None:
        lo, hi = inp.get("min_size"), inp.get("max_size")
        lo_text = "–".join(map(str, lo)) if isinstance(lo, list) else str(lo)
        size = lo_text if hi in (None, lo) else f"{lo_text} (max {hi})"
    else:
        size = None
    return {"iterations": sched.get("iterations"), "batch": batch, "size": size}


def schedule_text(s: dict[str, Any]) -> str:
    if s["iterations"] is None and s["batch"] is None and s["size"] is None:
        return "no training schedule"
    parts = [
        f"{s['iterations']} iter" if s["iterations"] is not None else None,
        f"batch {s['batch']}" if s["batch"] is not None else None,
        s["size"],
    ]
    return ", ".join(p for p in parts if p)


def iter_batch_text(s: dict[str, Any]) -> str:
    """``iterations × batch`` of a schedule (``500 × 4``; ``–`` where the run has no training schedule)."""
    if s["iterations"] is None and s["batch"] is None:
        return "–"
    return f"{s['iterations'] if s['iterations'] is not None else '?'} × {s['batch'] if s['batch'] is not None else '?'}"


def seconds_per_iter(log: list[dict[str, Any]]) -> float | None:
    times = [
        t
        for r in log
        if isinstance(r.get("iteration"), int | float)
        for t in [next((number(r.get(k)) for k in TIME_KEYS if number(r.get(k)) is not None), None)]
        if t is not None
    ]
    return statistics.median(times) if times else None


def loss_points(log: list[dict[str, Any]]) -> list[tuple[float, float]]:
    key = "loss" if any(number(r.get("loss")) is not None for r in log) else "loss_total"
    return [
        (float(r["iteration"]), v)
        for r in log
        if number(r.get("iteration")) is not None
        for v in [number(r.get(key))]
        if v is not None
    ]


#: The curve a zoo row draws from ``eval_curve.json``: the first IoU type a run has, in this order.
CURVE_IOU_TYPES = (("segm", "mask AP"), ("bbox", "box AP"), ("keypoints", "kp AP"))


def validation_points(curve: Any) -> tuple[str, list[tuple[float, float]]] | None:
    """(label, [(iteration, AP in percent)]) of an ``eval_curve.json`` (segbench.records.EVAL_CURVE):
    mask AP where the run has masks, else box or keypoint AP; None without a usable curve."""
    if not isinstance(curve, list):
        return None
    points = [p for p in curve if isinstance(p, dict) and number(p.get("iteration")) is not None]
    for key, label in CURVE_IOU_TYPES:
        values = [(float(p["iteration"]), number(dig(p, f"{key}.AP"))) for p in points]
        if values and all(v is not None for _, v in values):
            return label, [(x, 100 * v) for x, v in values if v is not None]
    return None


def class_details(doc: Any) -> dict[str, Any] | None:
    """What a zoo row shows of ``coco_details.json`` (segbench.records.COCO_DETAILS): per-class AP (mask,
    else box, else keypoints) and the mean precision-recall curve at IoU 0.50; None without the record."""
    if not isinstance(doc, dict):
        return None
    for key, label in CURVE_IOU_TYPES:
        part = doc.get(key)
        if not isinstance(part, dict) or not isinstance(part.get("per_category_AP"), dict):
            continue
        names = part.get("category_names", {})
        per_class = [
            (str(names.get(cid, cid)), 100 * float(ap))
            for cid, ap in part["per_category_AP"].items()
            if number(ap) is not None and float(ap) >= 0
        ]
        counts = [
            f"{names.get(cid, cid)} {part.get('detections_per_category', {}).get(cid, 0)}/{n}"
            for cid, n in part.get("ground_truth_per_category", {}).items()
        ]
        recall, precision = part.get("recall") or [], part.get("precision_iou50") or []
        pr = [
            (float(r), float(p))
            for r, p in zip(recall, precision, strict=False)
            if number(p) is not None and p >= 0
        ]
        return {"label": label, "per_class": per_class, "counts": counts, "pr": pr}
    return None


def read_record(path: Path) -> Any:
    """A run record's JSON (``eval_curve.json``, ``coco_details.json``); None when absent or unreadable: the
    zoo shows nothing for it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def sparkline(
    points: list[tuple[float, float]],
    title: str,
    *,
    width: int = 150,
    height: int = 38,
    log_y: bool = True,
    y_range: tuple[float, float] | None = None,
) -> Markup | None:
    """A small inline SVG polyline (log y when every value is positive: losses fall over decades);
    ``y_range`` fixes the y axis (precision from 0 to 1) instead of spanning the values."""
    if len(points) < 2:
        return None
    step = max(1, len(points) // 80)
    pts = points[::step] + ([points[-1]] if (len(points) - 1) % step else [])
    use_log = log_y and all(v > 0 for _, v in pts)
    ys = [math.log10(v) if use_log else v for _, v in pts]
    xs = [x for x, _ in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if y_range is not None and not use_log:
        y0, y1 = y_range
    pad = 2.0

    def sx(x: float) -> float:
        return pad + (x - x0) / ((x1 - x0) or 1.0) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / ((y1 - y0) or 1.0) * (height - 2 * pad)

    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
    return Markup(  # numbers we computed; the title is escaped
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.2" points="{coords}"/></svg>'
    )


def fmt_metric(value: float | None, key: str) -> str:
    """A metrics.json value of ``key`` as the tables show it (COCO AP x 100, one decimal)."""
    kind = metric_kind(key)
    return kind.value(None if value is None else value * kind.scale)


def fmt_seconds(value: Any) -> str:
    v = number(value)
    if v is None:
        return NOT_RECORDED
    return f"{v:.0f} s" if v >= 100 else f"{v:.1f} s"


def eval_set(metrics: dict[str, Any]) -> str | None:
    """The evaluation set a metrics.json was measured on, in words (images / slices / frames)."""
    m = metrics.get("metrics") if isinstance(metrics.get("metrics"), dict) else {}
    ev = m.get("eval") if isinstance(m.get("eval"), dict) else {}
    if ev.get("images") is not None:
        return f"{ev['images']} {ev.get('split', 'val')} images"
    isbi = m.get("isbi") if isinstance(m.get("isbi"), dict) else {}
    if isbi.get("slices") is not None:
        return f"{isbi['slices']} held-out ISBI slices"
    ctc = m.get("ctc") if isinstance(m.get("ctc"), dict) else {}
    if isinstance(ctc.get("held_out"), list):
        objects = f", {ctc['objects']} objects" if ctc.get("objects") is not None else ""
        return f"{len(ctc['held_out'])} held-out frames{objects}"
    return None


def run_record(run_dir: Path, page_dir: Path) -> dict[str, Any]:
    """Everything the zoo and a table page show about one run instance."""
    cfg_doc = read_json_or_none(run_dir / "config.json")
    done = read_json_or_none(run_dir / "train_done.json") or {}
    metrics = read_json_or_none(run_dir / "metrics.json") or {}
    config = run_config(cfg_doc)
    log = read_log(run_dir / "train_log.jsonl")
    prov = next(
        (
            p
            for p in (done.get("provenance"), dig(cfg_doc, "provenance"), metrics.get("provenance"))
            if isinstance(p, dict) and p.get("git_commit")
        ),
        {},
    )
    sched = schedule_of(config)
    spi = seconds_per_iter(log)
    losses = loss_points(log)
    val = validation_points(read_record(run_dir / EVAL_CURVE))
    details = class_details(read_record(run_dir / COCO_DETAILS))
    train_s = metrics.get("train_wall_time_s", dig(done, "provenance.wall_time_s"))
    values = metrics.get("metrics") if isinstance(metrics.get("metrics"), dict) else {}
    dataset = config.get("dataset")
    seed = config.get("seed", metrics.get("seed"))
    return {
        "run_id": run_dir.name,
        "values": {label: number(dig(values, path)) for path, label in ZOO_METRICS},
        "s_per_iter_value": spi,
        "train_s": number(train_s),
        "eval_s": number(dig(metrics, "provenance.wall_time_s")),
        "input_px": sched["size"] or "–",
        "iter_batch": iter_batch_text(sched),
        "run": config.get("run", metrics.get("run", split_run_id(run_dir.name)[0])),
        "seed": seed,
        "family": config.get("family") or ("classical" if not log else "other"),
        "dataset": dataset.get("name") if isinstance(dataset, dict) else dataset,
        "schedule": sched,
        "schedule_text": schedule_text(sched),
        # a run without a training loop (a threshold fitted in one pass) has no s/iter to record
        "s_per_iter": f"{spi:.3f}"
        if spi is not None
        else (NOT_RECORDED if log or sched["iterations"] else "–"),
        "train_time": fmt_seconds(train_s),
        "eval_time": fmt_seconds(dig(metrics, "provenance.wall_time_s")),
        "metrics": {label: fmt_metric(number(dig(values, path)), path) for path, label in ZOO_METRICS},
        "eval_set": eval_set(metrics),
        "git_commit": prov.get("git_commit"),
        "device": prov.get("device"),
        "host": prov.get("host"),
        "links": [
            {
                "name": name,
                "href": url_between(run_dir / name, page_dir),
                "exists": (run_dir / name).is_file(),
            }
            for name in RUN_FILES
        ],
        "loss_svg": sparkline(
            losses,
            f"{run_dir.name}: training loss over {len(losses)} logged iterations"
            + (f", {losses[0][1]:.3g} to {losses[-1][1]:.3g} (log scale)" if losses else ""),
        ),
        "loss_range": value_range(losses[0][1], losses[-1][1]) if losses else None,
        "val_svg": sparkline(
            val[1],
            f"{run_dir.name}: validation {val[0]} over iterations, "
            + ", ".join(f"{v:.1f} at {x:g}" for x, v in val[1]),
            log_y=False,
        )
        if val
        else None,
        "val_range": f"{val[0]} {val[1][0][1]:.1f} → {val[1][-1][1]:.1f}" if val else None,
        "per_class": ", ".join(f"{name} {ap:.1f}" for name, ap in details["per_class"]) if details else None,
        "per_class_label": details["label"] if details else None,
        "class_counts": ", ".join(details["counts"]) if details else None,
        "pr_svg": sparkline(
            details["pr"],
            f"{run_dir.name}: precision (mean over classes) vs recall at IoU 0.50, {details['label']}",
            log_y=False,
            y_range=(0.0, 1.0),
        )
        if details
        else None,
    }


def run_dirs(results: Path, scale: str) -> list[Path]:
    runs = runs_dir(results, scale)
    return (
        sorted(
            p
            for p in runs.iterdir()
            if p.is_dir() and not p.name.startswith((".", "stale-")) and (p / "config.json").is_file()
        )
        if runs.is_dir()
        else []
    )


def mean_of(values: list[float | None]) -> float | None:
    """The mean of the recorded values (None where no seed recorded one)."""
    found = [v for v in values if v is not None]
    return statistics.fmean(found) if found else None


def config_row(run: str, rows: list[dict[str, Any]], columns: list[str]) -> dict[str, Any]:
    """One configuration (a registry run across its seeds): the mean ± std over seeds of each metric column
    (formatted as the tables format a cell), the mean s/iter, train and eval time, and the per-seed rows."""
    from segbench.tables.aggregate import seed_summary

    keys = {label: key for key, label in ZOO_METRICS}
    metrics = {}
    for label in columns:
        kind = metric_kind(keys[label])
        cell = seed_summary(
            [None if v is None else v * kind.scale for v in (r["values"][label] for r in rows)]
        )
        metrics[label] = {"text": kind.reproduced(cell) if cell["n"] else MISSING, "value": cell["mean"]}
    spi = mean_of([r["s_per_iter_value"] for r in rows])
    train_s, eval_s = mean_of([r["train_s"] for r in rows]), mean_of([r["eval_s"] for r in rows])
    first = rows[0]
    return {
        "run": run,
        "anchor": f"config-{run}",
        "dataset": first["dataset"] or "–",
        "input_px": first["input_px"],
        "iter_batch": first["iter_batch"],
        "seeds": ", ".join(str(r["seed"]) for r in rows),
        "n": len(rows),
        "s_per_iter": f"{spi:.3f}" if spi is not None else first["s_per_iter"],
        "s_per_iter_value": spi,
        "train_time": fmt_seconds(train_s) if train_s is not None else first["train_time"],
        "train_s": train_s,
        "eval_time": fmt_seconds(eval_s) if eval_s is not None else first["eval_time"],
        "eval_s": eval_s,
        "metrics": metrics,
        "rows": rows,
    }


def zoo_view(results: Path, scale: str, page_dir: Path) -> list[dict[str, Any]]:
    """The run zoo: one group per family, its configurations (a registry run across its seeds, see
    :func:`config_row`) with their per-seed rows, and the metric columns any of its runs has."""
    records = [run_record(d, page_dir) for d in run_dirs(results, scale)]
    families = sorted(
        {r["family"] for r in records},
        key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else len(FAMILY_ORDER), f),
    )
    groups = []
    for fam in families:
        rows = [r for r in records if r["family"] == fam]
        columns = [label for _, label in ZOO_METRICS if any(r["metrics"][label] != MISSING for r in rows)]
        by_run: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_run.setdefault(str(r["run"]), []).append(r)
        for seeds in by_run.values():  # seed 2 before seed 10
            seeds.sort(
                key=lambda r: (not isinstance(r["seed"], int), r["seed"] if isinstance(r["seed"], int) else 0)
            )
        groups.append(
            {
                "family": fam,
                "title": FAMILY_TITLES.get(fam, fam),
                "rows": rows,
                "configs": [config_row(run, seeds, columns) for run, seeds in by_run.items()],
                "columns": columns,
                "has_log": any(r["loss_svg"] is not None for r in rows),
                "has_curve": any(r["val_svg"] is not None for r in rows),
                "has_details": any(r["per_class"] is not None for r in rows),
            }
        )
    return groups


def distinct(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v is not None and v not in seen:
            seen.append(v)
    return seen


def table_runs_summary(run_ids: list[str], results: Path, scale: str, page_dir: Path) -> dict[str, Any]:
    """What a table's runs were trained with and where: schedules, eval sets, seeds, commits, machines."""
    dirs = [record_run_dir(results, scale, rid) for rid in sorted(run_ids)]
    records = [run_record(d, page_dir) for d in dirs if d.is_dir()]
    schedules: dict[str, list[str]] = {}
    for r in records:
        schedules.setdefault(r["schedule_text"], []).append(r["run"])
    return {
        "schedules": [{"text": text, "runs": ", ".join(distinct(runs))} for text, runs in schedules.items()],
        "eval_sets": distinct([r["eval_set"] for r in records]),
        "seeds": sorted(distinct([r["seed"] for r in records]), key=str),
        "commits": distinct([r["git_commit"] for r in records]),
        "machines": distinct(
            [" on ".join(str(x) for x in (r["device"], r["host"]) if x) or None for r in records]
        ),
        "count": len(records),
    }
