"""``segbench sweep``: one point of a recorded schedule sweep (train + evaluate a run with overrides)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train and evaluate a run with overridden keys; append the result to results/<scale>/sweep.jsonl",
        description="How a scale's schedule is chosen, on the record: RUN is trained at SCALE with each "
        "--set SECTION.KEY=VALUE (YAML value; e.g. schedule.iterations=1000, model.rpn_post_nms_train=300) "
        "in a scratch folder, evaluated on val, and one line (command, overrides, commit, time, AP, whether "
        "the loss levelled off) is appended to results/<scale>/sweep.jsonl; results/<scale>/sweep.md is "
        "rewritten. The registry's runs are not touched.",
    )
    p.add_argument("run", nargs="?", help="registry run (a Mask R-CNN run)")
    p.add_argument(
        "--scale",
        default=None,
        help="the scale whose schedule is swept (default: the registry's default_scale)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--name", default=None, help="the row's name (default: RUN plus the overrides' hash)")
    p.add_argument("--results", default=None, help="results root (default: <repo>/results)")
    p.add_argument("--data-root", default=None, help="data root (default: $SEGBENCH_DATA or <repo>/data)")
    p.add_argument("--workdir", default=None, help="scratch folder for the training (default: a temp dir)")
    p.add_argument("--summary", action="store_true", help="only rewrite sweep.md from sweep.jsonl")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbench.bench.sweep import sweep_run, write_summary
    from segbench.errors import InputError
    from segbench.paths import child_path, data_root, results_root
    from segbench.provenance import config_hash
    from segbench.registry import check_scale, load_registry

    args.scale = args.scale or load_registry()["default_scale"]
    check_scale(args.scale)
    results = results_root(args.results)
    out = child_path(results, args.scale, what="scale") / "sweep.jsonl"
    if not args.summary:
        if not args.run:
            raise InputError("segbench sweep: name a RUN (e.g. r50_fpn), or pass --summary")
        name = args.name or f"{args.run}-{config_hash(args.overrides)[:6]}"
        record = sweep_run(
            args.run,
            args.scale,
            args.seed,
            args.overrides,
            name,
            data_root(args.data_root),
            results,
            out,
            Path(args.workdir) if args.workdir else None,
        )
        aps = ", ".join(f"{k} {v}" for k, v in record.items() if k.endswith("_AP"))
        print(f"{name}: {aps}; {record['train_s']} s; loss change {record['loss_change_last_10pct']}")
    print(write_summary(out))
    return 0
