"""``segbench audit``: retrain committed run instances and check them against their records."""

from __future__ import annotations

import argparse

from segbench.cli._common import scale_help
from segbench.engine.device import check_device
from segbench.errors import InputError
from segbench.paths import data_root
from segbench.registry import check_scale, load_registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="retrain committed runs from their recorded config and compare with their records",
        description="Retrain committed run instances (results/<scale>/runs/<run>-seed<k>/) from the config they "
        "record into a temporary results root (the committed records are never touched), evaluate "
        "them and compare with the committed train_log.jsonl and metrics.json: bit for bit where the "
        "recorded machine signature matches this machine's, otherwise each headline metric (the "
        "tables' columns) within 3 sd of a difference of two draws of its committed value, sd from the "
        "run's seeds (the other metrics are reported, not judged). A mini Mask R-CNN rerun starts from "
        "the committed pretrained backbone. Prints a line per stage and a verdict per run and writes a "
        "JSON report; exit 0 when the audit passes, 1 on a discrepancy beyond the rule.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--runs",
        help="comma-separated run ids (threshold_phc-seed1) or run names (all their committed seeds)",
    )
    which.add_argument("--sample", type=int, help="audit N committed run instances drawn at random (--seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --sample draw (default 0)")
    p.add_argument("--scale", default=None, help=scale_help("the registry's default_scale"))
    p.add_argument("--results", default=None, help="committed results root (default: <repo>/results)")
    p.add_argument("--data-root", default=None, help="data root (default: $SEGBENCH_DATA or <repo>/data)")
    p.add_argument(
        "--work-dir",
        default=None,
        help="where the reruns go (default: a new temporary folder); never inside the committed results",
    )
    p.add_argument(
        "--out", default=None, help="JSON report (default: <work dir>/audit.json); never inside the results"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the reruns (default: the count each record names, as bit for bit needs); "
        "another count sums floats in another order, the one-machine stand-in for another CPU",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbench.audit import audit, select_instances

    check_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads}: give at least 1 thread")
    scale = args.scale or load_registry()["default_scale"]
    check_scale(scale)
    names = [n.strip() for n in (args.runs or "").split(",") if n.strip()]
    run_ids = select_instances(scale, names, args.sample, args.seed, args.results)
    summary = audit(
        scale,
        run_ids,
        data=data_root(args.data_root),
        results=args.results,
        work_dir=args.work_dir,
        out=args.out,
        device=args.device,
        threads=args.threads,
        echo=lambda line: print(line, flush=True),
    )
    word = "passed" if summary["passed"] else "FAILED"
    print(
        f"audit {word}: {sum(r['passed'] for r in summary['runs'])}/{len(summary['runs'])} run(s) "
        f"in {summary['wall_time_s']} s; report {summary['report_path']}"
    )
    return 0 if summary["passed"] else 1
