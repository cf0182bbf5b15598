"""``segbench plan``: the runs, data and GPU time a target needs, before anything is downloaded or trained."""

from __future__ import annotations

import argparse

from segbench.io import dumps


def add_parser(sub: argparse._SubParsersAction) -> None:
    from segbench.cli._common import scale_help
    from segbench.plan import GPU_TYPES

    p = sub.add_parser(
        "plan",
        help="estimate a target's runs, downloads, GPU-hours and wall time before running it",
        description="List every run `snakemake reproduce_TARGET` trains at a scale, with its iterations, images "
        "per batch, images seen and dataset (download size), and estimate GPU-hours and wall time "
        "from the benchmark records in results/bench/*.json. Without a GPU record of the chosen type "
        "the CPU figures are scaled by a documented factor, and each row says so.",
    )
    p.add_argument("target", help="table or artifact (table2, unet_table1, all), or reproduce_<name>")
    p.add_argument("--scale", default="paper", help=scale_help("paper"))
    p.add_argument("--gpus", type=int, default=None, help="GPUs to plan for (default: the paper's, 8)")
    p.add_argument("--gpu-type", default="h100", choices=sorted(GPU_TYPES), help="GPU type (default: h100)")
    p.add_argument("--bench", default=None, help="folder of benchmark records (default: <results>/bench)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbench.plan import format_plan, plan

    result = plan(args.target, args.scale, gpus=args.gpus, gpu_type=args.gpu_type, bench_dir=args.bench)
    if args.json:
        print(dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(format_plan(result)))
    return 0
