"""``segbench table``: assemble a paper table from run results."""

from __future__ import annotations

import argparse

from segbench.registry import artifacts, check_scale, load_registry
from segbench.tables import write_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table", help="assemble a table (or artifact, e.g. table2) from run results",
        description="Write results/<scale>/tables/<table>.{json,csv,md}: reproduced mean ± std over seeds, "
                    "the paper's value, the delta, the paper's directions, provenance.")
    p.add_argument("name", help="table or artifact name (segbench list)")
    p.add_argument("--scale", default=None, help="smoke | mini | paper (default: the registry's default)")
    p.add_argument("--results", default=None, help="results root (default: <repo>/results)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = load_registry()
    scale = args.scale or registry["default_scale"]
    check_scale(scale, registry)
    for name in artifacts(registry).get(args.name, [args.name]):
        path = write_table(name, scale, args.results)
        print(f"{name}: {path.with_suffix('.md')}")
    return 0
