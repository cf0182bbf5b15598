"""``segbench train``: train one run instance (run x scale x seed) of the registry, resumably."""

from __future__ import annotations

import argparse
import time

from segbench.cli._common import add_run_arguments, resolve_from_args
from segbench.engine import engine_for
from segbench.io import read_json, write_json_atomic
from segbench.provenance import config_hash, provenance


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train one run of the registry (resumes from its last checkpoint)",
        description="Train RUN at SCALE with SEED into results/<scale>/runs/<run>-seed<k>/. An interrupted "
                    "run resumes from its newest checkpoint; a finished one (train_done.json with the same "
                    "config hash) is left alone unless --force.")
    add_run_arguments(p)
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs granted (Snakemake passes resources.gpu); the batch and learning rate are "
                        "rescaled and recorded when this differs from the paper's")
    p.add_argument("--force", action="store_true", help="retrain even if train_done.json is up to date")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg, out, data = resolve_from_args(args)
    engine = engine_for(cfg["family"])  # fails with "not implemented yet" before anything is written
    digest = config_hash(cfg)
    done = out / "train_done.json"
    if done.exists() and not args.force and read_json(done, "train record").get("config_hash") == digest:
        print(f"{cfg['run_id']}: already trained ({done}); --force retrains")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", {"config": cfg, "config_hash": digest,
                                             "provenance": provenance(cfg, seeds=[cfg["seed"]], scale=cfg["scale"])})
    start = time.perf_counter()
    summary = engine.train(cfg, out, data, device=args.device, gpus=args.gpus or 0)
    wall = time.perf_counter() - start
    write_json_atomic(done, {"run_id": cfg["run_id"], "config_hash": digest, "summary": summary,
                             "provenance": provenance(cfg, seeds=[cfg["seed"]], wall_time_s=wall,
                                                      scale=cfg["scale"])})
    print(f"{cfg['run_id']}: trained in {wall:.1f} s -> {out}")
    return 0
