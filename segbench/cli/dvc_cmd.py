"""``segbench dvc export``: the metrics, plots and weights files the stages of dvc.yaml declare."""

from __future__ import annotations

import argparse

from segbench.checkout import default_results
from segbench.cli._common import add_checkout_results_argument, scale_help
from segbench.registry import check_scale, load_registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dvc",
        help="export what DVC tracks of a table: metrics, plots data, final weights (docs/dvc.md)",
        description="Files for DVC, written from the assembled tables and their runs' records.",
    )
    actions = p.add_subparsers(dest="dvc_action", metavar="ACTION", required=True)
    e = actions.add_parser(
        "export",
        help="write results/<scale>/dvc/{metrics,plots}/<table>/ (--weights: results/<scale>/weights/<table>/)",
        description="Write one small metrics file per table cell and the plots data (training loss and "
        "validation AP per run, paper vs reproduced) of TABLE, or of every assembled table at SCALE "
        "(dvc.yaml's reproduce stages run this); with --weights, copy each of the table's runs' "
        "model_final.pt to results/<scale>/weights/<table>/<run>.pt instead (the weights stages: a "
        "DVC-cached out that dvc push / dvc pull move).",
    )
    e.add_argument("--scale", default=None, help=scale_help("the registry's default"))
    e.add_argument("--table", action="append", default=None, help="a table (repeatable); default: all")
    e.add_argument(
        "--weights", action="store_true", help="copy the runs' final weights (what is trained) instead"
    )
    add_checkout_results_argument(e)
    e.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from segbench.dvcexport import export

    registry = load_registry()
    scale = args.scale or registry["default_scale"]
    check_scale(scale, registry)
    results = default_results(args.results, "dvc export")
    for line in export(results, scale, args.table, weights=args.weights):
        print(line)
    return 0
