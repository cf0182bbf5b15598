"""``segbench evaluate``: evaluate one trained run instance and write its metrics.json."""

from __future__ import annotations

import argparse
import json
import time

from segbench.cli._common import add_run_arguments, resolve_from_args
from segbench.engine import engine_for
from segbench.errors import InputError
from segbench.io import read_json, write_json_atomic
from segbench.provenance import config_hash, provenance


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate a trained run (COCO AP, ISBI errors or SEG) into metrics.json",
        description="Evaluate RUN at SCALE with SEED on its dataset's held-out split and write "
                    "results/<scale>/runs/<run>-seed<k>/metrics.json with provenance.")
    add_run_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg, out, data = resolve_from_args(args)
    engine = engine_for(cfg["family"])
    done = out / "train_done.json"
    if not done.exists():
        raise InputError(f"{done}: run not trained yet; run `segbench train --run {cfg['run']} "
                         f"--scale {cfg['scale']} --seed {cfg['seed']}` first")
    digest = config_hash(cfg)
    trained = read_json(done, "train record")
    if trained.get("config_hash") != digest:
        raise InputError(f"{done}: trained with config {trained.get('config_hash')}, registry now gives {digest}; "
                         "retrain with `segbench train --force`")
    start = time.perf_counter()
    metrics = engine.evaluate(cfg, out, data, device=args.device)
    wall = time.perf_counter() - start
    record = {"run_id": cfg["run_id"], "run": cfg["run"], "seed": cfg["seed"], "scale": cfg["scale"],
              "config_hash": digest, "metrics": metrics,
              "train_wall_time_s": trained.get("provenance", {}).get("wall_time_s"),
              "provenance": provenance(cfg, seeds=[cfg["seed"]], wall_time_s=wall, scale=cfg["scale"])}
    write_json_atomic(out / "metrics.json", record)
    print(json.dumps({"run_id": cfg["run_id"], "metrics": metrics}, default=str)[:2000])
    return 0
