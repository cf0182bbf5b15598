"""Per-run figures from the run directories: training curves (losses over iterations) and metrics per run."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from segbench.io import read_json, read_jsonl
from segbench.paths import record_run_dir
from segbench.registry import split_run_id
from segbench.reporting.figures.base import FigureContext, MissingInput, new_figure, plain, save_matplotlib
from segbench.reporting.scale_text import scale_sample_words

# Headline metric per family, in the order a metrics.json is searched: (key, label, fraction -> percent).
HEADLINE_METRICS = (
    ("segm.AP", "mask AP", True),
    ("bbox.AP", "box AP", True),
    ("keypoints.AP", "keypoint AP", True),
    ("isbi.rand_error", "ISBI Rand error", False),
    ("ctc.seg", "cell tracking SEG", False),
)


HEADLINE_UNITS = {
    "mask AP": "%",
    "box AP": "%",
    "keypoint AP": "%",
    "ISBI Rand error": "fraction, lower is better",
    "cell tracking SEG": "IoU, fraction",
}


def run_name(run_id: str) -> str:
    """``r50_c4-seed2`` -> ``r50_c4``."""
    return split_run_id(run_id)[0]


def train_logs(ctx: FigureContext) -> dict[str, list[tuple[str, list[dict]]]]:
    """run -> [(run_id, log records)] for every run directory with a non-empty train_log.jsonl."""
    grouped: dict[str, list[tuple[str, list[dict]]]] = defaultdict(list)
    for path in sorted(ctx.runs_dir.glob("*/train_log.jsonl")):
        records = [r for r in read_jsonl(path) if isinstance(r.get("iteration"), int | float)]
        if records:
            grouped[run_name(path.parent.name)].append((path.parent.name, records))
    return dict(grouped)


def loss_keys(records: list[dict]) -> list[str]:
    keys = {k for r in records for k, v in r.items() if k.startswith("loss") and isinstance(v, int | float)}
    return sorted(keys, key=lambda k: (k not in ("loss", "loss_total"), k))


def grid(n: int, columns: int = 4) -> tuple[int, int]:
    cols = min(columns, n)
    return math.ceil(n / cols), cols


def render_training_curves(ctx: FigureContext) -> list[str]:
    logs = train_logs(ctx)
    if not logs:
        raise MissingInput(f"no train_log.jsonl under {ctx.runs_dir}; train a run first")
    rows, cols = grid(len(logs))
    words = scale_sample_words(ctx.scale)  # folds at a cross-validation scale
    fig = new_figure(3.4 * cols, 2.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (run, instances) in zip(axes, sorted(logs.items()), strict=False):
        keys = loss_keys([r for _, recs in instances for r in recs])
        for colour, key in enumerate(keys):
            for k, (_, recs) in enumerate(instances):
                points = [(r["iteration"], r[key]) for r in recs if isinstance(r.get(key), int | float)]
                if points and all(math.isfinite(v) for _, v in points):
                    xs, ys = zip(*points, strict=True)
                    ax.plot(
                        xs,
                        ys,
                        color=f"C{colour}",
                        alpha=1.0 if k == 0 else 0.45,
                        lw=1.2,
                        label=key if k == 0 else None,
                    )
        seeds = f"{len(instances)} " + words["many" if len(instances) > 1 else "one"]
        ax.set_title(plain(f"{run} ({seeds})"), fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("training loss (unitless)", fontsize=8)
        ax.tick_params(labelsize=7)
        if keys:
            ax.legend(fontsize=6, frameon=False)
    for ax in axes[len(logs) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"Training losses per run ({ctx.scale} scale; faint lines: further {words['many']})", fontsize=11
    )
    return save_matplotlib(fig, ctx.out_dir, "training_curves")


def headline(metrics: dict) -> tuple[str, str, float] | None:
    for key, label, percent in HEADLINE_METRICS:
        node = metrics
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, int | float) and math.isfinite(node):
            return key, label, float(node) * (100.0 if percent else 1.0)
    return None


def run_metrics(ctx: FigureContext) -> dict[str, dict[str, list[float]]]:
    """metric label -> run -> per-seed values of the run's headline metric."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(ctx.runs_dir.glob("*/metrics.json")):
        record = read_json(path, "run metrics")
        found = headline(record.get("metrics", {}) if isinstance(record, dict) else {})
        if found:
            _, label, value = found
            out[label][run_name(path.parent.name)].append(value)
    return {label: dict(runs) for label, runs in out.items()}


def render_run_metrics(ctx: FigureContext) -> list[str]:
    groups = run_metrics(ctx)
    if not groups:
        raise MissingInput(f"no metrics.json under {ctx.runs_dir}; evaluate a run first")
    ordered = sorted(groups.items())  # the heights follow the panels' order: one 0.3 in row per run
    words = scale_sample_words(ctx.scale)  # folds at a cross-validation scale
    heights = [max(1.6, 0.3 * len(runs) + 1.0) for _, runs in ordered]
    fig = new_figure(8.0, sum(heights) + 0.5)
    axes = fig.subplots(len(ordered), 1, squeeze=False, height_ratios=heights).ravel()
    for ax, (label, runs) in zip(axes, ordered, strict=True):
        names = sorted(runs)
        means = [sum(runs[n]) / len(runs[n]) for n in names]
        ax.barh(range(len(names)), means, color="C0", alpha=0.75)
        for i, name in enumerate(names):
            ax.scatter(runs[name], [i] * len(runs[name]), color="k", s=8, zorder=3)
        ax.set_yticks(range(len(names)), [plain(n) for n in names], fontsize=7)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_ylabel("run", fontsize=8)
        ax.set_xlabel(
            f"{label} ({HEADLINE_UNITS.get(label, '')}; bar: mean over {words['many']}, dots: {words['many']})",
            fontsize=8,
        )
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"Headline metric per run ({ctx.scale} scale)", fontsize=11)
    return save_matplotlib(fig, ctx.out_dir, "run_metrics")


def run_files(scale: str, results: Path, name: str) -> list[Path]:
    """``name`` (train_log.jsonl / metrics.json) of every run instance the registry defines at ``scale``."""
    from segbench.registry import runs_for_tables, table_names

    return [record_run_dir(results, scale, rs.run_id) / name for rs in runs_for_tables(table_names(), scale)]
