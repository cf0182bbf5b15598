"""``segbench table``: assemble a paper table from run results."""

from __future__ import annotations

import argparse
import sys

from segbench.cli._common import scale_help
from segbench.errors import InputError
from segbench.registry import artifacts, check_scale, load_registry
from segbench.status import assembled_with


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table",
        help="assemble a table (or artifact, e.g. table2) from run results",
        description="Write results/<scale>/tables/<table>.{json,csv,md}: reproduced mean ± std over seeds, "
        "the paper's value, the delta, the claims with their test, provenance; and print the "
        "table's Markdown to stdout (stderr says per table which files were written, or that "
        "nothing changed: an assembly that differs only in when and where it was made rewrites nothing).",
    )
    p.add_argument("name", nargs="?", help="table or artifact name (segbench list)")
    p.add_argument(
        "--summary",
        action="store_true",
        help="instead, print a Markdown digest of every assembled table of the scale (headline "
        "value per row, every direction with its verdict): the README's results section",
    )
    p.add_argument(
        "--with-shared",
        action="store_true",
        help="also re-assemble every other table all of whose runs NAME has (as the Snakemake "
        "target does), so tables that share runs stay consistent",
    )
    p.add_argument(
        "--no-write",
        "--print-only",
        dest="no_write",
        action="store_true",
        help="only print the Markdown; write no file (results/<scale>/tables stays as it is)",
    )
    p.add_argument("--scale", default=None, help=scale_help("the registry's default"))
    p.add_argument("--results", default=None, help="results root (default: <repo>/results)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = load_registry()
    scale = args.scale or registry["default_scale"]
    check_scale(scale, registry)
    if args.summary:
        from segbench.paths import results_root
        from segbench.tables.summary import summary_markdown

        print(summary_markdown(scale, results_root(args.results)), end="")
        return 0
    if not args.name:
        raise InputError("segbench table: name a table or artifact (segbench list), or pass --summary")
    names = (
        assembled_with(args.name, registry, scale)
        if args.with_shared
        else artifacts(registry).get(args.name, [args.name])
    )
    from segbench.dvcexport import export_table
    from segbench.paths import results_root
    from segbench.tables.assemble import assemble_table, to_markdown, update_table

    for i, name in enumerate(names):
        if args.no_write:
            markdown = to_markdown(assemble_table(name, scale, args.results))
        else:
            done = update_table(name, scale, args.results)
            export_table(results_root(args.results), scale, name)  # what DVC shows of it (docs/dvc.md)
            markdown = done.path.with_suffix(".md").read_text(encoding="utf-8")
            if done.changed:
                files = ", ".join(p.name for p in done.written)
                print(f"{name}: wrote {files} in {done.path.parent}", file=sys.stderr)
            else:
                print(f"{name}: unchanged ({done.path.with_suffix('.{json,csv,md}')})", file=sys.stderr)
        print(("\n" if i else "") + markdown, end="" if markdown.endswith("\n") else "\n")
    return 0
