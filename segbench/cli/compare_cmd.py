"""``segbench compare``: a new method against a table's baselines under the identical protocol."""

from __future__ import annotations

import argparse

from segbench.cli._common import add_checkout_results_argument, scale_help
from segbench.plugins import PLUGIN_KINDS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="run a new method (plugin) against a table's baseline rows, with seeds and statistics",
        description="Register METHOD (module:attr, file.py:attr or a `segbench.plugins` entry point), swap it "
        "into the table's base row, train and evaluate it and every baseline row on seeds "
        "0..N-1 (reusing baseline runs already computed), and write "
        "results/<scale>/compare/<table>--<method>.{json,csv,md}: mean ± std per row and, against each "
        "baseline row and metric, the claims engine's verdict (paired one-sided t-test over seeds, Holm-adjusted, "
        "better / worse / inconclusive / untested). The method's distribution, version and "
        "source hash are part of its runs' config: editing the plugin retrains them.",
    )
    p.add_argument(
        "--method", required=True, help="the plugin, e.g. examples.precise_roi_pool:precise_roi_pool"
    )
    p.add_argument(
        "--table", required=True, help="the table whose protocol and baselines to use (e.g. table2c)"
    )
    p.add_argument(
        "--seeds", type=int, default=3, help="seeds per row (default 3; the paired test needs >= 3)"
    )
    p.add_argument("--scale", default=None, help=scale_help("the registry's default"))
    p.add_argument(
        "--base",
        default=None,
        metavar="ROW",
        help="row whose run the method modifies (default: the paper's best row of the table)",
    )
    p.add_argument(
        "--kind",
        default=None,
        choices=sorted(PLUGIN_KINDS),
        help="what the plugin replaces (default: its segbench_kind attribute)",
    )
    add_checkout_results_argument(p)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: train_threads of config/config.yaml, as the workflow's training jobs)",
    )
    p.add_argument("--data-root", default=None, help="data root (default: $SEGBENCH_DATA or <repo>/data)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbench.checkout import default_results, set_threads, workflow_threads
    from segbench.compare import comparison_markdown, run_comparison
    from segbench.io import read_json
    from segbench.registry import check_scale, get_table, load_registry

    registry = load_registry()  # the table and scale first: a typo is one line, before the results root's
    get_table(args.table, registry)
    check_scale(args.scale or registry["default_scale"], registry)
    set_threads(workflow_threads() if args.threads is None else args.threads)
    out = run_comparison(
        args.method,
        args.table,
        seeds=args.seeds,
        scale=args.scale,
        results=default_results(args.results, "compare"),
        data_root=args.data_root,
        base_row=args.base,
        kind=args.kind,
        device=args.device,
    )
    print(comparison_markdown(read_json(out)))
    print(f"written: {out} (.csv, .md beside it)")
    return 0
