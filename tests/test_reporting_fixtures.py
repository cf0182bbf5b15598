"""Builders for the reporting tests (no tests here): a small results tree of fake runs, assembled into
real tables by ``segbench.tables.write_table``, with a registry whose labels try to inject markup."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from segbench.metrics.coco import DET_STATS
from segbench.provenance import config_hash
from segbench.registry import load_registry, registry_path, resolve_run, runs_for_tables
from segbench.tables import write_table

XSS = "<script>alert(1)</script>"
XSS_IMG = '<img src=x onerror="alert(2)">'
SCALE = "mini"
TABLES = ("table2b", "table2c", "unet_table1")
CURVE_RUN = "r50_c4"  # the one run whose fake runs recorded an evaluation curve
COCO_KEYS = DET_STATS  # what the engine records: AP and AR
# A fixed quality per run, so that directions come out both reproduced and not reproduced.
QUALITY = {
    "r50_c4": 0.30,
    "r50_c4_softmax": 0.24,
    "r50_c4_roipool": 0.33,
    "r50_c4_roiwarp_max": 0.27,
    "r50_c4_roiwarp_avg": 0.26,
    "r50_c4_roialign_max": 0.29,
    "unet_isbi": 0.9,
    "swcnn_isbi": 0.85,
    "threshold_isbi": 0.5,
}


def hostile_registry(tmp: Path) -> Path:
    """A copy of the registry with a row label and a table title that are HTML/JS injections."""
    reg = yaml.safe_load(registry_path().read_text(encoding="utf-8"))
    reg["tables"]["table2c"]["rows"][0]["label"] = XSS
    reg["tables"]["table2b"]["title"] = f"softmax vs sigmoid {XSS_IMG}"
    path = tmp / "experiments.yaml"
    path.write_text(yaml.safe_dump(reg, sort_keys=False), encoding="utf-8")
    return path


def _jitter(run_id: str, key: str) -> float:
    digest = hashlib.sha256(f"{run_id}/{key}".encode()).digest()
    return (digest[0] / 255.0 - 0.5) * 0.02


def fake_metrics(run: str, run_id: str) -> dict:
    q = QUALITY[run]
    coco = {k: max(q + _jitter(run_id, k) - 0.05 * i, 0.0) for i, k in enumerate(COCO_KEYS)}
    err = 1.0 - q
    if run.endswith("_isbi"):
        return {
            "isbi": {
                "warping_error": err * 1e-3,
                "rand_error": err * 0.1 + _jitter(run_id, "r"),
                "pixel_error": err * 0.1,
            }
        }
    return {"segm": coco, "bbox": dict(coco)}


def write_run(run_dir: Path, run: str, seed: int, scale: str = SCALE) -> None:
    q = QUALITY[run]
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = run_dir.name
    config = resolve_run(run, scale, seed)  # what segbench train records: the resolved config
    (run_dir / "config.json").write_text(
        json.dumps({"run": run, "seed": seed, "run_id": run_id, "config": config}), encoding="utf-8"
    )
    log = [
        {
            "iteration": i,
            "lr": 0.01,
            "loss": 2.0 / (i + 1) + 0.1 * seed,
            "loss_cls": 1.0 / (i + 1),
            "loss_mask": 0.7 / (i + 1) + 0.05 * seed,
        }
        for i in range(0, 40, 4)
    ]
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log), encoding="utf-8")
    record = {
        "run_id": run_id,
        "config_hash": config_hash(resolve_run(run, scale, seed)),
        "train_wall_time_s": 12.5,
        "provenance": {"git_commit": "abc1234", "device": "cpu (test)", "wall_time_s": 1.5},
        "metrics": fake_metrics(run, run_id),
    }
    (run_dir / "metrics.json").write_text(json.dumps(record), encoding="utf-8")
    if run == CURVE_RUN:  # the evaluation curve of training (segbench.records.EVAL_CURVE)
        curve = [
            {"iteration": i, "bbox": {"AP": q * i / 40}, "segm": {"AP": q * i / 50}} for i in (10, 20, 30, 40)
        ]
        (run_dir / "eval_curve.json").write_text(json.dumps(curve), encoding="utf-8")


def build_results(results: Path, tables: tuple[str, ...] = TABLES, scale: str = SCALE) -> list[Path]:
    """Fake run directories for ``tables`` at ``scale`` plus the assembled table files; returns the JSONs.
    Uses the registry ``$SEGBENCH_REGISTRY`` points at (set it first for a hostile registry)."""
    registry = load_registry()
    for rs in runs_for_tables(list(tables), scale, registry):
        write_run(results / scale / "runs" / rs.run_id, rs.run, rs.seed, scale)
    return [write_table(name, scale, results) for name in tables]
