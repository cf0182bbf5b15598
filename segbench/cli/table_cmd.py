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
        "value per row, every direction with its verdict); with --write or --check, the digest "
        "blocks of README.md and docs/results.md instead",
    )
    digest = p.add_mutually_exclusive_group()
    digest.add_argument(
        "--write",
        action="store_true",
        help="with --summary: rewrite the <!-- digest:begin ... --> blocks of README.md and "
        "docs/results.md from results/<scale>/tables/*.json (only --scale's blocks if given)",
    )
    digest.add_argument(
        "--check",
        action="store_true",
        help="with --summary: exit 1, naming the file, if a digest block differs from the table JSONs",
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
    if args.write or args.check:
        if not args.summary:
            raise InputError("segbench table: --write and --check go with --summary (the digest blocks)")
        return _digest(args)
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
    from segbench.tables.assemble import assemble_table, update_table
    from segbench.tables.render import to_markdown

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


def _digest(args: argparse.Namespace) -> int:
    """``--summary --write`` / ``--check``: the digest blocks of README.md and docs/results.md."""
    from segbench.paths import REPO_ROOT, results_root
    from segbench.tables.digest import stale_files, write_digests

    results = results_root(args.results)
    if args.write:
        for path in write_digests(REPO_ROOT, results, args.scale):
            print(f"digest: wrote {path.relative_to(REPO_ROOT)}", file=sys.stderr)
        return 0
    stale = stale_files(REPO_ROOT, results, args.scale)
    for path in stale:
        print(
            f"segbench: error: {path.relative_to(REPO_ROOT)}: results digest is stale (differs from "
            f"{results}/<scale>/tables/*.json); run `segbench table --summary --write` (make digest)",
            file=sys.stderr,
        )
    return 1 if stale else 0
