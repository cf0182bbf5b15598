"""``segbench bench``: speed and memory benchmarks into ``results/bench/*.json``, and their report page.

segbench bench maskrcnn --runs r50_fpn,r50_c4 --size 320x320 --iters 5     # one suite
segbench bench all --device cuda                                            # every suite, defaults
segbench bench report                                                       # reports/bench/index.html
"""

from __future__ import annotations

import argparse
import shlex
import sys

from segbench.errors import InputError

SUITE_NAMES = ("maskrcnn", "unet", "coco_eval", "isbi_metrics", "roi_ops")  # = segbench.bench.MODULES
ACTIONS = (*SUITE_NAMES, "all", "report")
COMMON = ("device", "threads")  # options `bench all` passes on to every suite that takes them


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="speed and memory benchmarks (results/bench/*.json) and their report page",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run a benchmark suite and write results/bench/<suite>-<device tag>.json (with the command, commit, "
            "package versions and machine), then print a short table.\n\nSUITE: "
            + ", ".join(SUITE_NAMES)
            + "; 'all' runs every suite with its defaults; 'report' writes reports/bench/index.html from "
            "every results/bench/*.json.\nOptions apply to the suites named in their group; any other "
            "combination is an error."
        ),
    )
    p.add_argument("suite", metavar="SUITE", help=f"one of {', '.join(ACTIONS)}")
    p.add_argument(
        "--out",
        default=None,
        help="where to write: the results folder (default results/bench), or for 'report' the "
        "report folder (default reports/bench)",
    )
    p.add_argument(
        "--results", default=None, help="report: the results folder to read (default results/bench)"
    )
    s = argparse.SUPPRESS  # an option not given stays out of the suite's options (its default applies)
    common = p.add_argument_group("maskrcnn, unet, roi_ops, and all (--threads also isbi_metrics)")
    common.add_argument(
        "--device", default=s, help="cpu | cuda[:N] (default: cuda where available, else cpu)"
    )
    common.add_argument(
        "--threads",
        type=int,
        default=s,
        help="torch intra-op threads (default 1); isbi_metrics: the metric's slice threads",
    )
    m = p.add_argument_group("maskrcnn")
    m.add_argument("--runs", default=s, help="registry runs, comma-separated, or 'all' (default r50_fpn)")
    m.add_argument(
        "--scale",
        default=s,
        help="resolve the runs at this scale: paper (default: the paper's "
        "widths) | mini | smoke (reduced widths, for quick checks)",
    )
    m.add_argument("--size", default=s, help="image HxW (default 320x320 on CPU, 800x1333 on CUDA)")
    m.add_argument("--batch", type=int, default=s, help="images per step (default 1)")
    m.add_argument("--iters", type=int, default=s, help="timed iterations (default 5)")
    m.add_argument("--warmup", type=int, default=s, help="warm-up iterations (default 1)")
    m.add_argument("--amp", action="store_true", default=s, help="torch.autocast float16 (CUDA only)")
    m.add_argument("--objects", type=int, default=s, help="ground-truth objects per image (default 4)")
    u = p.add_argument_group("unet")
    u.add_argument("--base-channels", type=int, default=s, help="U-Net width (default 64, the paper's)")
    u.add_argument("--tile", type=int, default=s, help="input tile side (default 572)")
    u.add_argument("--tiles", type=int, default=s, help="timed tile passes (default 2)")
    u.add_argument("--image-size", type=int, default=s, help="overlap-tile image side (default 512)")
    u.add_argument("--images", type=int, default=s, help="timed overlap-tile images (default 1)")
    u.add_argument("--test-time-versions", type=int, default=s, help="1 (no averaging) .. 8 (the paper's)")
    u.add_argument(
        "--train-steps",
        type=int,
        default=s,
        help="timed training steps (forward, weighted loss, backward, SGD) per variant: float32, the "
        "engine's amp autocast (bfloat16 on CPU, float16 on CUDA) and channels_last (default 5; 0 skips)",
    )
    o = p.add_argument_group("coco_eval, isbi_metrics, roi_ops")
    o.add_argument("--repeats", type=int, default=s, help="timed repeats (defaults 5, 3, 5)")
    o.add_argument("--sigma", type=float, default=s, help="isbi_metrics: blur of the label prediction (2.0)")
    o.add_argument(
        "--synthetic",
        action="store_true",
        default=s,
        help="isbi_metrics: a synthetic stack even where the shared data exist",
    )
    o.add_argument("--slices", type=int, default=s, help="isbi_metrics: first N slices (default 30, all)")
    o.add_argument("--features", default=s, help="roi_ops: small | large | both (default small)")
    o.add_argument("--rois-per-image", type=int, default=s, help="roi_ops: RoIs per image (default 256)")
    o.add_argument(
        "--sampling-ratio", type=int, default=s, help="roi_ops: RoIAlign sampling ratio (default 2)"
    )
    p.set_defaults(func=run)


def given_options(args: argparse.Namespace) -> dict:
    """The suite options given on the command line (only those: defaults come from the suite)."""
    skip = {"suite", "out", "results", "func", "command", "cli_argv"}
    return {k: v for k, v in vars(args).items() if k not in skip}


def command_line(args: argparse.Namespace) -> str:
    argv = getattr(args, "cli_argv", None)
    return shlex.join(["segbench", *(sys.argv[1:] if argv is None else argv)])


def run(args: argparse.Namespace) -> int:
    if args.suite not in ACTIONS:
        raise InputError(f"unknown benchmark suite {args.suite!r}; choose one of {', '.join(ACTIONS)}")
    given = given_options(args)
    if args.suite == "report":
        if given:
            raise InputError(
                f"segbench bench report takes --results and --out only, not "
                f"{', '.join('--' + k.replace('_', '-') for k in given)}"
            )
        from segbench.bench.report import build_bench_report

        index, count = build_bench_report(args.results, args.out)
        print(f"bench report: {index} ({count} result files)")
        return 0
    if args.results is not None:
        raise InputError("--results applies to `segbench bench report`; --out chooses where results go")
    from segbench.bench import MODULES, format_table, run_suite, suite_options

    command = command_line(args)
    if args.suite == "all":
        extra = sorted(set(given) - set(COMMON))
        if extra:
            raise InputError(
                f"segbench bench all runs every suite with its defaults; drop "
                f"{', '.join('--' + k.replace('_', '-') for k in extra)} or run that suite alone"
            )
        names = list(MODULES)
    else:
        names = [args.suite]
    for name in names:
        options = (
            given if args.suite != "all" else {k: v for k, v in given.items() if k in suite_options(name)}
        )
        path, record = run_suite(name, options, out=args.out, command=command)
        print(format_table(record))
        print(f"wrote {path}\n")
    if args.suite == "all":
        print("next: segbench bench report")
    return 0
