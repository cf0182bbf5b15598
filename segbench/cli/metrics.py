"""``segbench metrics``: ISBI 2012, cell-tracking SEG and COCO metrics on files (placeholder)."""

from __future__ import annotations

import argparse

from segbench.errors import NotImplementedYet


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="compute ISBI 2012, cell-tracking or COCO metrics on files")
    p.add_argument("kind", choices=["isbi", "seg", "coco"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedYet(f"metrics {args.kind}")
