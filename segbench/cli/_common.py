"""Arguments and helpers shared by the run-level subcommands (train, evaluate)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from segbench.engine.device import check_device
from segbench.errors import InputError
from segbench.paths import data_root, run_dir
from segbench.registry import load_registry, resolve_run


def scale_help(default: str) -> str:
    """``--scale`` help naming the registry's scales (read when the parser is built)."""
    try:
        names = " | ".join(load_registry()["scales"])
    except InputError:  # a broken registry is reported when the command runs, in one line
        names = "a scale of the registry"
    return f"{names} (default: {default})"


def add_checkout_results_argument(p: argparse.ArgumentParser) -> None:
    """``--results`` of the commands that resolve it with :func:`segbench.checkout.default_results`."""
    p.add_argument(
        "--results",
        default=None,
        help="results root (default: results/ of the segbench checkout the current directory is in, "
        "else of the installed one, said on stderr)",
    )


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run name from the registry (segbench list --runs)")
    p.add_argument("--scale", default=None, help=scale_help("the registry's default_scale"))
    p.add_argument("--seed", type=int, default=0, help="seed of this run instance (default 0)")
    p.add_argument("--results", default=None, help="results root (default: <repo>/results)")
    p.add_argument("--data-root", default=None, help="data root (default: $SEGBENCH_DATA or <repo>/data)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def run_label(args: argparse.Namespace, action: str = "train") -> str:
    """What a GPU-pool claim records as its holder: ``segbench train r50_fpn-seed0 at paper``."""
    return f"segbench {action} {args.run}-seed{args.seed} at {args.scale or 'the default scale'}"


def resolve_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], Path, Path]:
    """(resolved config, run directory, data root) for the run the arguments name; every argument is
    checked here, before anything is written."""
    check_seed(args.seed)
    check_device(args.device)
    scale = args.scale or load_registry()["default_scale"]
    cfg = resolve_run(args.run, scale, args.seed)
    return cfg, run_dir(scale, cfg["run_id"], args.results), data_root(args.data_root)


def check_gpus(gpus: int | None) -> int:
    """``--gpus`` of train/evaluate: the GPUs granted, 0 for none (what the workflow passes on the CPU scales);
    a negative count is refused. (``segbench plan --gpus`` needs at least 1: segbench.plan.)"""
    if gpus is not None and gpus < 0:
        raise InputError(
            f"--gpus {gpus}: the GPUs granted are 0 (none, a CPU run) or more; use --gpus 0 or 1"
        )
    return gpus or 0


def check_seed(seed: int) -> int:
    """Seeds are 0, 1, 2, ... (``<run>-seed<k>`` directories; NumPy refuses negative seeds)."""
    if seed < 0:
        raise InputError(f"--seed {seed}: seeds are non-negative integers (0, 1, 2, ...); use --seed 0")
    return seed
