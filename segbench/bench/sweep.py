"""Schedule sweeps for a scale: train and evaluate one run with overridden keys, and keep the record.

How the mini Mask R-CNN schedule was chosen (issue #16): each ``segbench sweep RUN --set KEY=VALUE ...``
trains the run at the scale with the overrides in a scratch folder, evaluates it on val, and appends one
line to ``results/<scale>/sweep.jsonl`` (the command, the overrides, the commit, the dataset's hash and
file count, train time, seconds per iteration, AP, and whether the loss levelled off); ``segbench sweep
--summary`` writes ``sweep.md``. The runs of the registry and the scale's data are never touched: a
synthetic dataset with overridden params is generated beside them (:func:`sweep_data_root`).
"""

from __future__ import annotations

import copy
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from segbench.errors import InputError, SegbenchError
from segbench.io import append_jsonl, read_jsonl, write_text_atomic
from segbench.provenance import config_hash, device_description, git_commit


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``cfg`` with each ``section.key=value`` (value parsed as YAML) set; unknown sections are refused."""
    out = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.split(".")
        if not sep or len(parts) < 2 or parts[0] not in out or not isinstance(out[parts[0]], dict):
            raise InputError(
                f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of "
                f"{', '.join(k for k, v in out.items() if isinstance(v, dict))}"
            )
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def sweep_data_root(cfg: dict[str, Any], data_root: Path) -> Path:
    """Where the swept run's data lives: ``data_root``, or for a synthetic dataset whose generator params are
    overridden (``--set dataset.params.num_train=2400``), ``<data_root>/.sweeps/<params hash>``, generated
    there on first use, so that the scale's own data (and the runs trained on it) stay as they are."""
    from segbench.data.registry import dataset_entry

    dataset = cfg.get("dataset") or {}
    registered = dataset_entry(dataset["name"]) if dataset.get("name") else {}
    if all(dataset.get(k) == registered.get(k) for k in ("generator", "params", "source", "layout")):
        return data_root
    if dataset.get("source") != "synthetic":
        raise InputError(
            f"segbench sweep: dataset {dataset.get('name')!r} is downloaded, not generated; only a synthetic "
            "dataset's params can be overridden (drop the --set dataset.* override)"
        )
    return data_root / ".sweeps" / config_hash({k: dataset.get(k) for k in ("generator", "params")})[:12]


def sweep_run(
    run: str,
    scale: str,
    seed: int,
    overrides: list[str],
    name: str,
    data_root: Path,
    results: Path,
    out: Path,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Train and evaluate ``run`` with ``overrides``; append the record to ``out`` and return it."""
    from segbench.engine import maskrcnn
    from segbench.engine.runner import dataset_of
    from segbench.registry import resolve_run
    from segbench.trainlog import TRAIN_LOG, log_convergence

    cfg = apply_overrides(resolve_run(run, scale, seed), overrides)
    if cfg["family"] != "maskrcnn":
        raise InputError(f"segbench sweep: run {run!r} is {cfg['family']}; only maskrcnn runs are swept")
    if cfg.get("pretraining"):  # reuse the scale's cached pretrained backbones, not a copy in the scratch dir
        cfg["pretraining_results"] = str(results)
    data_root = sweep_data_root(cfg, data_root)
    dataset = dataset_of(cfg, data_root)  # generated, or regenerated to the swept params, before training
    scratch = Path(workdir or tempfile.mkdtemp(prefix="segbench-sweep-")) / name
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.time()
    try:
        maskrcnn.train(cfg, scratch, data_root)
    except SegbenchError as exc:  # a diverging configuration is a result too: record it, then stop
        append_jsonl(out, {**_identity(name, run, scale, seed, overrides, cfg), "error": str(exc)})
        raise
    train_s = time.time() - started
    metrics = maskrcnn.evaluate(cfg, scratch, data_root)
    convergence = log_convergence(scratch / TRAIN_LOG)  # the tables' converged rule (segbench.trainlog)
    change = convergence["relative_change"]
    record = {
        **_identity(name, run, scale, seed, overrides, cfg),
        "dataset": dataset,
        "iterations": convergence["iterations"],
        "train_s": round(train_s, 1),
        "s_per_iter": round(train_s / max(1, convergence["iterations"]), 4),
        **{
            f"{iou}_AP": round(100 * metrics[iou]["AP"], 2)
            for iou in ("bbox", "segm", "keypoints")
            if iou in metrics
        },
        "loss_change_last_10pct": None if change is None else round(change, 4),
        "levelled_off": convergence["converged"],
    }
    append_jsonl(out, record)
    shutil.rmtree(scratch, ignore_errors=True)
    return record


def _identity(
    name: str, run: str, scale: str, seed: int, overrides: list[str], cfg: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "run": run,
        "scale": scale,
        "seed": seed,
        "overrides": overrides,
        "command": "segbench " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["sweep"] else None,
        "config_hash": config_hash(cfg),
        "git_commit": git_commit(),
        "device": device_description(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def summary_markdown(records: list[dict[str, Any]]) -> str:
    """The sweep as a Markdown table, in the order the configs were tried."""
    lines = [
        "| # | name | run | seed | overrides | iters | s/iter | train s | box AP | mask AP | kp AP | loss change (last 10%) | levelled off | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value: Any) -> str:
        return "" if value is None else str(value)

    for i, r in enumerate(records, 1):
        if "error" in r:
            lines.append(
                f"| {i} | {r['name']} | {r['run']} | {r['seed']} | {'<br>'.join(r['overrides'])} | "
                f"failed: {r['error'][:160]} |||||||| {r['git_commit'][:12]} |"
            )
            continue
        change = r.get("loss_change_last_10pct")
        lines.append(
            f"| {i} | {r['name']} | {r['run']} | {r['seed']} | {'<br>'.join(r['overrides']) or '(registry)'} | "
            f"{r['iterations']} | {r['s_per_iter']} | {r['train_s']} | {cell(r.get('bbox_AP'))} | "
            f"{cell(r.get('segm_AP'))} | {cell(r.get('keypoints_AP'))} | "
            f"{'' if change is None else f'{100 * change:+.1f}%'} | {cell(r.get('levelled_off'))} | "
            f"{r['git_commit'][:12]} |"
        )
    return "\n".join(lines) + "\n"


def write_summary(out: Path) -> Path:
    records = read_jsonl(out) if out.exists() else []
    path = out.with_suffix(".md")
    header = (
        "# Schedule sweep (segbench sweep)\n\n"
        "Each row: one training of a registry run at the scale with the overrides listed (dotted keys of the "
        "resolved config), evaluated on val. AP in %. Timings on the machine and thread count of the row's "
        f'provenance in {out.name}; concurrent jobs slow them. "(registry)" is the registry\'s schedule at the '
        "row's commit; each row's command is in the JSONL.\n\n"
    )
    write_text_atomic(path, header + summary_markdown(records))
    return path


def read_records(out: Path) -> list[dict[str, Any]]:
    return read_jsonl(out) if out.exists() else []


__all__ = ["apply_overrides", "read_records", "sweep_run", "write_summary"]
