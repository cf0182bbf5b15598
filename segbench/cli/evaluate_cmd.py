"""``segbench evaluate``: evaluate one trained run instance and write its metrics.json."""

from __future__ import annotations

import argparse
import json

from segbench.cli._common import add_run_arguments, resolve_from_args
from segbench.engine.runner import evaluate_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained run (COCO AP, ISBI errors or SEG) into metrics.json",
        description="Evaluate RUN at SCALE with SEED on its dataset's held-out split and write "
        "results/<scale>/runs/<run>-seed<k>/metrics.json with provenance.",
    )
    add_run_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg, out, data = resolve_from_args(args)
    record = evaluate_run(cfg, out, data, device=args.device)
    print(json.dumps({"run_id": cfg["run_id"], "metrics": record["metrics"]}, default=str))
    return 0
