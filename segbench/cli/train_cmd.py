"""``segbench train``: train one run instance (run x scale x seed) of the registry, resumably."""

from __future__ import annotations

import argparse

from segbench.cli._common import add_run_arguments, check_gpus, resolve_from_args, run_label
from segbench.engine.gpu_pool import claim_from_environment
from segbench.engine.runner import train_run
from segbench.workflow_env import retrain_requested


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one run of the registry (resumes from its last checkpoint)",
        description="Train RUN at SCALE with SEED into results/<scale>/runs/<run>-seed<k>/. An interrupted "
        "run resumes from its newest checkpoint; a finished one (train_done.json with the same "
        "config hash) is left alone unless --force.",
    )
    add_run_arguments(p)
    p.add_argument(
        "--gpus",
        type=int,
        default=None,
        help="GPUs granted (Snakemake passes resources.gpu); N > 1 runs as N processes, launched "
        "as `torchrun --standalone --nproc_per_node=N -m segbench train ... --gpus N` (refused in "
        "a single process). The batch and learning rate are rescaled and recorded when N differs "
        "from the paper's. With SEGBENCH_GPU_POOL set (e.g. 0,1,2,3), this many ids are claimed "
        "from the pool (under torchrun by local rank 0 for all ranks) and CUDA_VISIBLE_DEVICES "
        "set to them, so concurrent jobs get distinct GPUs",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="retrain from scratch even if train_done.json is up to date (the old records are set "
        "aside in stale-<hash>/); SEGBENCH_RETRAIN=1 does the same, which is how `make reproduce "
        "FORCE=1` (snakemake --forcerun train --config retrain=1) reaches every training job",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="re-hash every dataset file against its MANIFEST (default: only files whose size or "
        "mtime changed); a changed synthetic dataset is regenerated, a changed real one refused",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    claim_from_environment(check_gpus(args.gpus), holder=run_label(args))  # before anything initialises CUDA
    cfg, out, data = resolve_from_args(args)
    record = train_run(
        cfg,
        out,
        data,
        device=args.device,
        gpus=args.gpus or 0,
        force=args.force or retrain_requested(),
        verify=args.verify,
    )
    print(f"{cfg['run_id']}: trained ({record['provenance']['wall_time_s']} s) -> {out}")
    return 0
