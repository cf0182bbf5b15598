"""The ``segbench`` command line: one module per subcommand, each with ``add_parser(subparsers)``.

Every subcommand returns an exit code; a :class:`segbench.errors.SegbenchError` becomes a one-line
message on stderr and its exit code, with nothing half-written left behind (writes are atomic).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from segbench import __version__
from segbench.errors import SegbenchError
from segbench.optional import missing_package

# Subcommand name -> module under segbench.cli. Order is the order of `segbench --help`.
SUBCOMMANDS = {
    "list": "list_cmd",
    "data": "data_cmd",
    "pretrain": "pretrain_cmd",
    "train": "train_cmd",
    "evaluate": "evaluate_cmd",
    "table": "table_cmd",
    "report": "report_cmd",
    "metrics": "metrics",
    "compare": "compare_cmd",
    "diff": "diff_cmd",
    "status": "status_cmd",
    "plan": "plan_cmd",
    "bench": "bench_cmd",
    "sweep": "sweep_cmd",
    "audit": "audit_cmd",
    "isbi": "isbi_cmd",
    "dvc": "dvc_cmd",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` (a subcommand's name): a command line that names its
    subcommand imports that module alone, so ``segbench table`` does not pay for torch's import (1-2 s),
    which the training and evaluation modules need; ``segbench --help`` imports all of them."""
    parser = argparse.ArgumentParser(
        prog="segbench",
        description=(
            "Reproduce Mask R-CNN (He et al., 2017) and U-Net (Ronneberger et al., 2015) from raw data "
            "to tables and reports. The registry (segbench list) says which tables, rows and runs exist; "
            "Snakemake (snakemake --cores all reproduce_table2) drives these subcommands."
        ),
    )
    parser.add_argument("--version", action="version", version=f"segbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        if only is not None and name != only:
            continue
        importlib.import_module(f"segbench.cli.{module_name}").add_parser(sub)
    return parser


_FIXES = {
    errno.ENOSPC: "free space or choose another --results (or --data-root)",
    errno.EDQUOT: "free space (disk quota exceeded) or choose another --results (or --data-root)",
    errno.EACCES: "fix its permissions or choose another --results (or --data-root)",
    errno.EPERM: "fix its permissions or choose another --results (or --data-root)",
    errno.EROFS: "the file system is read-only; choose another --results (or --data-root)",
    errno.ENOTDIR: "a path component is a file, not a folder; point --results / --data-root / SEGBENCH_DATA "
    "at a folder",
    errno.EEXIST: "a file is in the way of a folder; move it or choose another --results (or --data-root)",
    errno.EIO: "free space or choose another --results (or --data-root); check the disk if it persists",
}


def os_error_line(exc: OSError) -> str:
    """One line for an ``OSError``: the file, the reason and a fix that matches the reason."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = " ".join(str(exc.strerror or exc).split())
    fix = _FIXES.get(exc.errno or 0, "check the path, then rerun")
    return f"{where}{reason}; {fix}"


def _named_subcommand(argv: list[str]) -> str | None:
    """The subcommand a command line names (its first word, when that is one), else None."""
    return argv[0] if argv and argv[0] in SUBCOMMANDS else None


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=_named_subcommand(words))
    args = parser.parse_args(argv)
    args.cli_argv = list(words)  # for commands that record their command line
    try:
        return int(args.func(args) or 0)
    except SegbenchError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:  # a dependency missing on a bare image: one line, not a traceback
        error = missing_package(exc, f"segbench {args.command}")
        if error is None:
            raise
        print(f"segbench: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # `segbench list ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # disk full, permission denied, read-only results root: one line, not a traceback
        print(f"segbench: error: {os_error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("segbench: interrupted; completed results are intact, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
