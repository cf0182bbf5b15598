"""ISBI 2012 held-out predictions with their errors per slice (``isbi_predictions``).

The U-Net paper shows its EM predictions beside the raw slice (Ronneberger et al. 2015, Fig. 2, right) and
ranks them by the organisers' warping, Rand and pixel errors (Table 1). This figure shows, for a U-Net run
of the registry's ``figures.isbi_predictions.runs`` and the other listed runs (the sliding-window CNN) of
the same seed (fold at a cross-validation scale), up to :data:`MAX_SLICES` of the run's held-out slices: the
raw image, the predicted P(cell), and the prediction thresholded at the run's warping-error threshold
against the ground truth, titled with that slice's three errors at the run's thresholds
(``metrics.json`` ``isbi.per_slice``, :func:`segbench.metrics.isbi_pooled.slice_errors`). The images and
maps come from the run's ``predictions_val.npz`` (:mod:`segbench.records`); nothing here builds a model or
reads the data root. A run evaluated before those records existed is left out with a one-line note; with
no usable run the figure is skipped.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segbench.errors import InputError
from segbench.formatting import FRACTION
from segbench.io import read_json
from segbench.records import CELL_EXAMPLE
from segbench.reporting.figures.base import FigureContext, MissingInput, new_figure, plain, save_matplotlib
from segbench.reporting.figures.predictions import shown
from segbench.reporting.figures.unet import wrap_words

FIGURE = "isbi_predictions"
MAX_SLICES = 3  # of a fold's held-out slices (real_cpu: 6), evenly spaced, first and last included
ERRORS = (("warping_error", "warping"), ("rand_error", "Rand"), ("pixel_error", "pixel"))
#: the thresholded prediction against the ground truth: cell / membrane agreed, and the two mistakes
AGREE_CELL, AGREE_MEMBRANE = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
MISSED_MEMBRANE, SPURIOUS_MEMBRANE = (1.0, 0.25, 0.25), (0.2, 0.8, 1.0)


@dataclass(frozen=True)
class HeldOutRun:
    """A run's held-out slices: its ``isbi`` metrics (with ``per_slice``), the saved maps, its data."""

    run_id: str
    label: str
    isbi: dict[str, Any]
    images: np.ndarray  # Z x H x W, float16
    probabilities: np.ndarray  # Z x H x W, P(cell), float16
    truths: np.ndarray  # Z x H x W, 1 = cell
    dataset: str
    real: bool
    fold: int | None
    folds: int | None


def load_run(run_dir: Path, label: str) -> HeldOutRun | str:
    """The run's held-out records, or the reason (one line) it has none the figure can use."""
    name = run_dir.name
    if not (run_dir / "metrics.json").is_file():
        return f"{name}: not evaluated (no metrics.json)"
    try:
        isbi = read_json(run_dir / "metrics.json", "run metrics").get("metrics", {}).get("isbi")
        config = read_json(run_dir / "config.json", "run config").get("config", {})
    except InputError as exc:
        return f"{name}: {str(exc).splitlines()[0]}"
    if not isinstance(isbi, dict):
        return f"{name}: metrics.json has no ISBI errors"
    if not isbi.get("per_slice"):
        return f"{name}: metrics.json has no per_slice (evaluated before per-slice errors; re-run segbench evaluate)"
    path = run_dir / CELL_EXAMPLE
    if not path.is_file():
        return f"{name}: no {CELL_EXAMPLE} (re-run segbench evaluate)"
    try:
        with np.load(path) as saved:
            if "probabilities" not in saved.files:
                return f"{name}: its {CELL_EXAMPLE} holds one slice only (written before every slice was kept; re-run segbench evaluate)"
            images, probabilities = saved["images"], saved["probabilities"]
            truths, names = saved["ground_truths"], saved["names"].tolist()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        return f"{name}: unreadable {CELL_EXAMPLE} ({type(exc).__name__}); re-run segbench evaluate"
    if names != [s.get("name") for s in isbi["per_slice"]]:
        return f"{name}: {CELL_EXAMPLE} and metrics.json name different slices (re-run segbench evaluate)"
    dataset, split = config.get("dataset", {}), config.get("split", {})
    return HeldOutRun(
        name,
        label,
        isbi,
        images,
        probabilities,
        truths,
        str(dataset.get("name", "?")),
        dataset.get("source") == "real",
        split.get("fold"),
        split.get("folds"),
    )


def seed_dirs(ctx: FigureContext, run: str) -> list[Path]:
    """The run's seed directories at the context's scale, lowest seed first."""
    return sorted(ctx.runs_dir.glob(f"{run}-seed*"), key=lambda p: (len(p.name), p.name))


def chosen_runs(ctx: FigureContext) -> tuple[list[HeldOutRun], list[str]]:
    """The first listed run with usable records at its lowest such seed, then the other listed runs at
    that seed; and a note for each listed run left out."""
    from segbench.registry import figure_runs, split_run_id

    listed = figure_runs(FIGURE)
    notes: list[str] = []
    for k, (run, label) in enumerate(listed):
        dirs = seed_dirs(ctx, run)
        loaded = [load_run(d, label) for d in dirs]
        first = next((r for r in loaded if isinstance(r, HeldOutRun)), None)
        if first is None:
            notes.append(next((r for r in loaded if isinstance(r, str)), f"{run}: no run"))
            continue
        seed = split_run_id(first.run_id)[1]
        shown_runs = [first]
        for other, other_label in listed[k + 1 :]:
            run_dir = ctx.runs_dir / f"{other}-seed{seed}"
            if not run_dir.is_dir():
                notes.append(f"{run_dir.name}: no run")
                continue
            loaded_other = load_run(run_dir, other_label)
            if isinstance(loaded_other, HeldOutRun):
                shown_runs.append(loaded_other)
            else:
                notes.append(loaded_other)
        return shown_runs, notes
    names = ", ".join(run for run, _ in listed) or "none listed"
    raise MissingInput(
        f"no run of {names} under {shown(ctx.runs_dir)} has per-slice records (metrics.json "
        f"isbi.per_slice and {CELL_EXAMPLE} with every held-out slice): " + "; ".join(notes)
    )


def spread(n: int, k: int = MAX_SLICES) -> list[int]:
    """Up to ``k`` of ``n`` positions, evenly spaced, first and last included."""
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, k))})


def slice_range(indices: list[int]) -> str:
    """``slice 24`` or ``slices 24-29`` (``slices 1, 3`` when not contiguous)."""
    if len(indices) == 1:
        return f"slice {indices[0]}"
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"slices {indices[0]}-{indices[-1]}"
    return "slices " + ", ".join(map(str, indices))


def errors_text(values: dict[str, Any]) -> str:
    """``warping 0.000353 · Rand 0.0382 · pixel 0.0611``."""
    return " · ".join(f"{word} {FRACTION.value(values.get(key))}" for key, word in ERRORS)


def comparison(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """RGB image of a binary prediction (True = cell) against the ground truth (True = cell)."""
    rgb = np.zeros((*truth.shape, 3))
    for mask, colour in (
        (prediction & truth, AGREE_CELL),
        (~prediction & ~truth, AGREE_MEMBRANE),
        (prediction & ~truth, MISSED_MEMBRANE),
        (~prediction & truth, SPURIOUS_MEMBRANE),
    ):
        rgb[mask] = colour
    return rgb


def title(ctx: FigureContext, runs: list[HeldOutRun]) -> str:
    """What is shown, at which scale, on which data (held-out, real or not), and each run's own errors."""
    lead = runs[0]
    indices = [int(s["index"]) for s in lead.isbi["per_slice"]]
    where = f"fold {lead.fold + 1} of {lead.folds}, " if lead.fold is not None and lead.folds else ""
    data = "real data" if lead.real else "synthetic data"
    ids = ("runs " if len(runs) > 1 else "run ") + " and ".join(r.run_id for r in runs)
    lines = [
        f"Held-out predictions at scale {ctx.scale}: {slice_range(indices)} of {lead.dataset} "
        f"({where}{data}), {ids}"
    ]
    for run in runs:
        lines.append(
            f"{run.label} ({run.run_id}), errors of its {len(run.isbi['per_slice'])} held-out slices: "
            + errors_text(run.isbi)
        )
    return "\n".join(lines)


def render_isbi_predictions(ctx: FigureContext) -> list[str]:
    runs, notes = chosen_runs(ctx)
    lead = runs[0]
    rows = spread(len(lead.isbi["per_slice"]))
    columns = 1 + 2 * len(runs)
    fig = new_figure(3.0 * columns, 3.2 * len(rows) + 1.4 + 0.2 * len(notes))
    axes = np.atleast_2d(fig.subplots(len(rows), columns))
    for row, z in zip(axes, rows, strict=True):
        entry = lead.isbi["per_slice"][z]
        row[0].imshow(lead.images[z].astype(np.float32), cmap="gray")
        row[0].set_title(plain(f"{entry['name']} (stack index {entry['index']}): raw image"), fontsize=8)
        for k, run in enumerate(runs):
            errors = next((s for s in run.isbi["per_slice"] if s["index"] == entry["index"]), None)
            p_ax, t_ax = row[1 + 2 * k], row[2 + 2 * k]
            if errors is None:  # a run of the same seed scored other slices: say so, draw nothing
                for ax in (p_ax, t_ax):
                    ax.set_axis_off()
                p_ax.set_title(plain(f"{run.label}: {entry['name']} not held out"), fontsize=8)
                continue
            zz = run.isbi["per_slice"].index(errors)
            probability = run.probabilities[zz].astype(np.float64)
            p_ax.imshow(probability, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
            p_ax.set_title(plain(f"{run.label}: P(cell), 0 purple to 1 yellow"), fontsize=8)
            t = float(run.isbi["best_threshold"]["warping_error"])
            t_ax.imshow(comparison(probability > t, run.truths[zz] > 0), interpolation="nearest")
            t_ax.set_title(
                plain(f"{run.label}: P(cell) > {t:.1f} vs ground truth\n{errors_text(errors)}"), fontsize=8
            )
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    shown_note = (
        f"{len(rows)} of {len(lead.isbi['per_slice'])} held-out slices shown; "
        if len(rows) < len(lead.isbi["per_slice"])
        else ""
    )
    footer = [
        wrap_words(
            f"{shown_note}errors per slice at the run's thresholds (metrics.json per_slice); thresholded at the "
            "run's warping-error threshold: white / black = cell / membrane as in the ground truth, red = "
            "ground-truth membrane predicted as cell, cyan = predicted membrane inside a ground-truth cell",
            40 * columns,
        ),
        *(f"not shown: {note}" for note in notes),
    ]
    fig.suptitle(plain(title(ctx, runs)), fontsize=10)
    fig.supxlabel(plain("\n".join(footer)), fontsize=8)
    return save_matplotlib(fig, ctx.out_dir, FIGURE)
