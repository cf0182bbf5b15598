"""``segbench isbi``: ISBI 2012 challenge submissions and the scores the organisers return.

    segbench isbi submission --run RUN --scale S [--seed K] [--out FILE] [--held-out]
    segbench isbi record-scores --run RUN --scale S [--seed K] --rand X --warping Y --pixel Z
                                [--vrand A] [--vinfo B] [--date YYYY-MM-DD] [--source TEXT]

See :mod:`segbench.isbi_submission` and docs/isbi_submission.md.
"""

from __future__ import annotations

import argparse
import sys

from segbench.cli._common import add_run_arguments, resolve_from_args
from segbench.io import dumps


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "isbi",
        help="ISBI 2012 challenge: write a submission of the test stack, record the organisers' scores",
        description="Official ISBI 2012 test-set numbers come only from the challenge server. `submission` "
        "predicts the test stack with a trained U-Net or sliding-window run in the organisers' format; "
        "`record-scores` stores the numbers the server returns beside the run.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = actions.add_parser(
        "submission",
        help="predict the test stack into a float32 TIFF (1 = cell, 0 = membrane) with a JSON record",
        description="Predict the 30-slice test stack (a synthetic stand-in at synthetic scales) exactly as "
        "the evaluation predicts held-out slices, and write results/<scale>/runs/<run>-seed<k>/"
        "isbi_submission.tif (float32 in [0, 1], 1 = cell) and isbi_submission.json beside it.",
    )
    add_run_arguments(s)
    s.add_argument(
        "--out", default=None, help="TIFF to write (default: isbi_submission.tif in the run directory)"
    )
    s.add_argument(
        "--held-out",
        action="store_true",
        help="instead, write the run's held-out TRAINING slices in the submission format, score the file "
        "and compare with the evaluation's metrics.json (exit 1 if they differ)",
    )
    s.set_defaults(func=run_submission)

    r = actions.add_parser(
        "record-scores",
        help="store the organisers' scores of a submission next to the run (isbi_official.json)",
        description="Store the numbers the challenge server returned for this run's submission in "
        "results/<scale>/runs/<run>-seed<k>/isbi_official.json, marked as reported by the organisers; "
        "the report shows them beside the held-out numbers.",
    )
    add_run_arguments(r)
    for flag, name in (
        ("--rand", "rand_error"),
        ("--warping", "warping_error"),
        ("--pixel", "pixel_error"),
        ("--vrand", "v_rand"),
        ("--vinfo", "v_info"),
    ):
        r.add_argument(flag, dest=name, type=float, default=None, help=f"the server's {name}")
    r.add_argument("--date", default=None, help="date the scores were returned, YYYY-MM-DD (default: today)")
    r.add_argument(
        "--source",
        default="ISBI 2012 challenge server (http://brainiac2.mit.edu/isbi_challenge/)",
        help="where the numbers come from (leaderboard URL, e-mail)",
    )
    r.set_defaults(func=run_record)


def run_submission(args: argparse.Namespace) -> int:
    from segbench.isbi_submission import make_submission, validate_on_training

    cfg, run_dir, data = resolve_from_args(args)
    if args.held_out:
        result = validate_on_training(cfg, run_dir, data, out=args.out, device=args.device)
        print(dumps(result, default=str))
        if result["match"] is False:
            print(
                f"segbench: error: {result['file']['file']}: scoring the submission-format file gives "
                f"{result['submission_errors']}, the evaluation recorded {result['evaluation_errors']}",
                file=sys.stderr,
            )
            return 1
        return 0
    record = make_submission(cfg, run_dir, data, out=args.out, device=args.device)
    out = record["output"]
    print(
        f"{record['run_id']}: wrote {out['file']} ({' x '.join(map(str, out['shape']))} float32, sha256 "
        f"{out['sha256'][:16]}) from {record['input']['kind']} in {record['wall_time_s']:.1f} s"
    )
    return 0


def run_record(args: argparse.Namespace) -> int:
    from segbench.isbi_submission import OFFICIAL_METRICS, record_scores

    cfg, run_dir, _ = resolve_from_args(args)
    scores = {name: getattr(args, name) for name in OFFICIAL_METRICS}
    record = record_scores(cfg, run_dir, scores, date=args.date, source=args.source)
    print(dumps(record))
    return 0
