"""``segbench status``: what a target's results on disk say, before anything runs."""

from __future__ import annotations

import argparse

from segbench.checkout import default_results
from segbench.cli._common import add_checkout_results_argument, scale_help
from segbench.registry import check_scale, load_registry
from segbench.status import assembled_with, describe, target_status


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="which runs of a target are current, stale or missing, and which tables are stale",
        description="Compare the run records under results/<scale>/runs/ with the registry's configs and the "
        "assembled tables with their runs' metrics: what `snakemake reproduce_TARGET` will train and "
        "why. `make reproduce` prints this before it starts.",
    )
    p.add_argument("target", help="table or artifact (table2, unet_table1, all), or reproduce_<name>")
    p.add_argument("--scale", default=None, help=scale_help("the registry's default"))
    add_checkout_results_argument(p)
    p.add_argument(
        "--retrain", action="store_true", help="describe a from-scratch retrain (make reproduce FORCE=1)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = load_registry()
    scale = args.scale or registry["default_scale"]
    check_scale(scale, registry)
    artifact = args.target.removeprefix("reproduce_")
    assembled_with(artifact, registry, scale)  # an unknown target is one line, before the results root's
    results = default_results(args.results, "status", must_exist=True)
    for line in describe(target_status(artifact, scale, results), retrain=args.retrain):
        print(line)
    return 0
