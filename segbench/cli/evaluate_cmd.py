"""``segbench evaluate``: evaluate one trained run instance and write its metrics.json."""

from __future__ import annotations

import argparse

from segbench.cli._common import add_run_arguments, check_gpus, resolve_from_args, run_label
from segbench.engine.gpu_pool import claim_from_environment
from segbench.engine.runner import evaluate_run
from segbench.io import dumps


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained run (COCO AP, ISBI errors or SEG) into metrics.json",
        description="Evaluate RUN at SCALE with SEED on its dataset's held-out split and write "
        "results/<scale>/runs/<run>-seed<k>/metrics.json with provenance.",
    )
    add_run_arguments(p)
    p.add_argument(
        "--gpus",
        type=int,
        default=None,
        help="GPUs granted (Snakemake passes resources.gpu: 1 where the training used a GPU); with "
        "SEGBENCH_GPU_POOL set, one id is claimed from the pool and CUDA_VISIBLE_DEVICES set to it",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    claim_from_environment(
        min(1, check_gpus(args.gpus)), holder=run_label(args, "evaluate")
    )  # before CUDA starts
    cfg, out, data = resolve_from_args(args)
    record = evaluate_run(cfg, out, data, device=args.device)
    print(dumps({"run_id": cfg["run_id"], "metrics": record["metrics"]}, default=str))
    return 0
