"""What DVC shows of a table: small metrics files, plots data and the runs' final weights.

``segbench table`` (Snakemake's table rule) writes these files after each table it assembles, and
``segbench dvc export`` (each ``reproduce@<table>`` stage of dvc.yaml, after Snakemake) writes them for
tables assembled before, from the table JSON and its runs' records, under ``<results>/<scale>/``:

- ``dvc/metrics/<table>/<row>.<column>.json``: one cell, ``{mean, std, paper, n}`` (``dvc metrics show``
  prints one short line per cell; a table-wide file would be one line of every row and column);
- ``dvc/plots/<table>/loss.csv`` (training loss per run over iterations, from ``train_log.jsonl``),
  ``val_ap.csv`` (the table's headline AP on the validation split during training, from
  ``eval_curve.json``; header only where no run records a curve) and ``paper_vs_reproduced.csv``;
- with ``--weights`` (the ``weights@<table>`` stage), ``weights/<table>/<run_id>.pt``: each of the table's
  runs' ``model_final.pt`` (a DVC-cached out, so ``dvc push`` and ``dvc pull`` move it;
  :func:`segbench.paths.final_model` finds a pulled copy for ``segbench evaluate``).
"""

from __future__ import annotations

import csv
import filecmp
import io
import math
import shutil
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.io import json_text, read_json, read_jsonl, write_text_atomic, write_with
from segbench.paths import FINAL_MODEL, child_path, dvc_dir, record_run_dir, table_file, weights_dir
from segbench.registry import (
    check_table_at_scale,
    headline_column,
    load_registry,
    runs_for_tables,
    table_names,
)

#: at most this many points per run in loss.csv (a paper-scale log has 160k lines; plots stay small)
MAX_LOSS_POINTS = 100


def export(results: Path, scale: str, tables: list[str] | None = None, *, weights: bool = False) -> list[str]:
    """Export ``tables`` (default: every table defined at ``scale``; without ``weights``, those assembled);
    one summary line per table. ``weights``: copy the table's runs' final weights instead of the metrics
    and plots (the runs come from the registry, so a table not yet assembled exports what is trained)."""
    registry = load_registry()
    if tables:
        for name in tables:
            check_table_at_scale(name, scale, registry)
    else:
        tables = [
            t for t in table_names(registry, scale) if weights or table_file(results, scale, t).is_file()
        ]
    if weights:
        return [export_weights(results, scale, name, registry) for name in tables]
    return [export_table(results, scale, name) for name in tables]


def export_weights(results: Path, scale: str, table: str, registry: dict[str, Any]) -> str:
    """Copy the final weights of ``table``'s runs at ``scale``; a one-line summary."""
    run_ids = [r.run_id for r in runs_for_tables([table], scale, registry)]
    run_dirs = {r: record_run_dir(results, scale, r) for r in run_ids}
    copied, missing = copy_weights(run_dirs, weights_dir(results, scale, table))
    note = f" ({len(missing)} runs have no {FINAL_MODEL} here: train them or `dvc pull`)" if missing else ""
    return f"{table}: {copied} weight files{note}"


def export_table(results: Path, scale: str, table: str) -> str:
    """Write the metrics, plots and weights of one assembled table; a one-line summary."""
    path = table_file(results, scale, table)
    if not path.is_file():
        raise InputError(
            f"{path}: table not assembled yet; run `snakemake --cores all reproduce_{table} "
            f"--config scale={scale}` first"
        )
    data = read_json(path, "table JSON")
    run_ids = sorted(data.get("runs") or {})
    run_dirs = {r: record_run_dir(results, scale, r, source=path) for r in run_ids}
    cells = write_metrics(dvc_dir(results, scale) / "metrics" / table, data)
    plots = dvc_dir(results, scale) / "plots" / table
    write_csv(plots / "paper_vs_reproduced.csv", paper_vs_reproduced(data))
    write_csv(plots / "loss.csv", [p for r in run_ids for p in loss_points(r, run_dirs[r])])
    write_csv(
        plots / "val_ap.csv",
        [p for r in run_ids for p in ap_points(r, run_dirs[r], data, table)],
        header=("run_id", "iteration", "AP"),
    )
    return f"{table}: {cells} metric cells, plots of {len(run_ids)} runs"


def write_metrics(folder: Path, data: dict[str, Any]) -> int:
    """One ``<row>.<column>.json`` per reproduced cell; files of cells no longer in the table are removed."""
    wanted: dict[str, str] = {}
    for row in data["rows"]:
        if row.get("reference_only"):
            continue
        for column, cell in (row.get("values") or {}).items():
            if not isinstance(cell, dict) or cell.get("mean") is None:
                continue
            name = child_path(folder, f"{row['id']}.{column}", ".json", what="row/column").name
            wanted[name] = json_text({k: cell.get(k) for k in ("mean", "std", "paper", "n")})
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        write_if_changed(folder / name, text)
    return len(wanted)


def write_if_changed(path: Path, text: str) -> None:
    """Write ``path`` atomically unless it already holds ``text`` (an unchanged export keeps its dates)."""
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)


def paper_vs_reproduced(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A row per cell with both a paper value and a reproduced mean."""
    out = []
    for row in data["rows"]:
        for column, cell in (row.get("values") or {}).items():
            if isinstance(cell, dict) and cell.get("paper") is not None and cell.get("mean") is not None:
                out.append(
                    {
                        "cell": f"{row['id']}.{column}",
                        "row": row["id"],
                        "column": column,
                        "paper": cell["paper"],
                        "reproduced": cell["mean"],
                        "std": cell.get("std"),
                    }
                )
    return out


def loss_points(run_id: str, run_dir: Path) -> list[dict[str, Any]]:
    """``train_log.jsonl``'s loss, at most :data:`MAX_LOSS_POINTS` evenly spaced iterations (the last kept)."""
    log = run_dir / "train_log.jsonl"
    steps = [e for e in read_jsonl(log) if "loss" in e and "iteration" in e] if log.is_file() else []
    stride = max(1, math.ceil(len(steps) / MAX_LOSS_POINTS))
    kept = steps[::stride] + ([steps[-1]] if steps and (len(steps) - 1) % stride else [])
    return [{"run_id": run_id, "iteration": e["iteration"], "loss": e["loss"]} for e in kept]


def ap_points(run_id: str, run_dir: Path, data: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """The table's headline metric (e.g. ``segm.AP``), in %, at each point of the run's ``eval_curve.json``."""
    curve_file = run_dir / "eval_curve.json"
    source = (data.get("metrics") or {}).get(headline_column(table))
    if not curve_file.is_file() or not isinstance(source, str) or "." not in source:
        return []
    task, key = source.split(".", 1)
    points = []
    for point in read_json(curve_file, "evaluation curve"):
        value = (point.get(task) or {}).get(key)
        if isinstance(value, (int, float)):
            points.append({"run_id": run_id, "iteration": point["iteration"], "AP": 100.0 * value})
    return points


def write_csv(path: Path, rows: list[dict[str, Any]], header: tuple[str, ...] | None = None) -> None:
    fields = list(rows[0]) if rows else list(header or ())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_if_changed(path, buffer.getvalue())


def copy_weights(run_dirs: dict[str, Path], folder: Path) -> tuple[int, list[str]]:
    """Copy each run's final model to ``folder/<run_id>.pt`` (atomic; an identical file is kept). The
    folder is always created: a checkout without trained weights exports an empty one."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.pt"):
        if stale.stem not in run_dirs:
            stale.unlink()
    copied, missing = 0, []
    for run_id, run_dir in run_dirs.items():
        source, target = run_dir / FINAL_MODEL, folder / f"{run_id}.pt"
        if not source.is_file():
            missing.append(run_id)
            continue
        if not (target.is_file() and filecmp.cmp(source, target, shallow=False)):
            write_with(target, lambda tmp, s=source: shutil.copyfile(s, tmp), "weights")
        copied += 1
    return copied, missing
