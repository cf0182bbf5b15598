"""``segbench diff``: the configuration keys that differ between two run instances."""

from __future__ import annotations

import argparse

from segbench.cli._common import scale_help
from segbench.configdiff import config_diff, format_value, run_config
from segbench.errors import InputError
from segbench.paths import results_root, runs_dir
from segbench.registry import check_scale, load_registry, run_id, split_run_id


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="which config keys differ between two runs (from their config.json)",
        description="Print one line per configuration key whose value differs between the two run "
        "instances' recorded configs (results/<scale>/runs/<run>-seed<k>/config.json), as flattened "
        "dotted names: `model.roi_layer: roi_pool -> roi_align`. A run name without -seed<k> means "
        "seed --seed (default 0). The runs' identity (run, run_id, seed) is left out.",
    )
    p.add_argument(
        "run_a", metavar="RUN_A", help="run instance (r50_c4_roipool-seed0) or run (r50_c4_roipool)"
    )
    p.add_argument("run_b", metavar="RUN_B", help="run instance or run to compare with RUN_A")
    p.add_argument("--seed", type=int, default=0, help="seed of a RUN given without -seed<k> (default 0)")
    p.add_argument("--scale", default=None, help=scale_help("the registry's default"))
    p.add_argument("--results", default=None, help="results root (default: <repo>/results)")
    p.set_defaults(func=run)


def instance(name: str, seed: int) -> str:
    """``name`` as a run instance: itself where it ends in -seed<k>, else ``<name>-seed<seed>``."""
    run, k = split_run_id(name)
    return run_id(run, seed if k is None else k)


def run(args: argparse.Namespace) -> int:
    registry = load_registry()
    scale = args.scale or registry["default_scale"]
    check_scale(scale, registry)
    runs = runs_dir(results_root(args.results), scale)
    a, b = instance(args.run_a, args.seed), instance(args.run_b, args.seed)
    if a == b:
        raise InputError(f"segbench diff: {a} against itself; name two different runs")
    for rid in (a, b):
        if not (runs / rid).is_dir():
            raise InputError(
                f"{runs / rid}: no such run instance at scale {scale!r} (segbench list --runs --scale {scale})"
            )
    diff = config_diff({a: run_config(runs / a), b: run_config(runs / b)})
    for entry in diff:
        print(f"{entry['key']}: {format_value(entry['values'][a])} -> {format_value(entry['values'][b])}")
    if not diff:
        print(f"{a} and {b}: same configuration (apart from run, run_id, seed)")
    return 0
