"""``segbench report``: HTML pages (paper beside reproduction) and figures for one scale."""

from __future__ import annotations

import argparse
import sys

from segbench.cli._common import scale_help
from segbench.registry import check_scale, get_table, load_registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write the HTML report (reports/<scale>/index.html) and figures",
        description="Render every figure (skipping, with a note, those whose inputs are missing) into "
        "reports/<scale>/figures/ and write reports/<scale>/index.html plus one page per table "
        "under results/<scale>/tables/ and one per comparison under results/<scale>/compare/ "
        "(reports/<scale>/compare/<table>--<method>.html). --figure NAME renders only that figure.",
    )
    p.add_argument("--scale", default=None, help=scale_help("the registry's default"))
    p.add_argument("--results", default=None, help="results root (default: <repo>/results)")
    p.add_argument("--out", default=None, help="reports root (default: <repo>/reports)")
    p.add_argument("--data-root", default=None, help="data root (default: $SEGBENCH_DATA or <repo>/data)")
    p.add_argument(
        "--figure",
        action="append",
        metavar="NAME",
        help="render only this figure (repeatable; see --list-figures); writes no pages",
    )
    p.add_argument(
        "--no-figures",
        action="store_true",
        help="write the pages from figures already rendered (do not render any)",
    )
    p.add_argument(
        "--table",
        action="append",
        metavar="NAME",
        help="render only the figures of this table before writing the pages (repeatable; what the "
        "Snakemake report rule does per table). The run-wide figures (training curves, metric per run) "
        "are left to --figure (their Snakemake targets, and reproduce_all): rendered per table they "
        "were drawn once per page, each time over a part of the runs",
    )
    p.add_argument("--list-figures", action="store_true", help="print the figure names and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbench.reporting import FIGURES, build_report, figure_context, render_figure

    if args.list_figures:
        for name, spec in FIGURES.items():
            print(f"{name:18s} {spec.title}")
        return 0
    registry = load_registry()
    scale = args.scale or registry["default_scale"]
    check_scale(scale, registry)
    if args.figure:
        ctx = figure_context(scale, args.results, args.out, args.data_root)
        results = [render_figure(name, ctx) for name in args.figure]
    else:
        chosen = None
        if args.table:
            for name in args.table:
                get_table(name, registry)
            chosen = [n for n, spec in FIGURES.items() if set(spec.tables) & set(args.table)]
        paths, results = build_report(
            scale,
            args.results,
            args.out,
            figures=chosen,
            render=not args.no_figures,
            data_root=args.data_root,
        )
        compared = f", {len(paths.comparisons)} comparison pages" if paths.comparisons else ""
        print(f"report: {paths.index} ({len(paths.pages)} table pages{compared})")
    for r in results:
        where = ", ".join(str(ctx_file) for ctx_file in r.files + ([r.html] if r.html else []))
        line = (
            f"figure {r.name}: {r.status}"
            + (f" ({where})" if where else "")
            + (f" - {r.note}" if r.note else "")
        )
        print(line, file=sys.stderr if r.status == "failed" else sys.stdout)
    return 1 if any(r.status == "failed" for r in results) else 0
