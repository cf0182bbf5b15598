"""Errors that the CLI turns into a one-line message and a non-zero exit code."""

from __future__ import annotations


class SegbenchError(Exception):
    """A user-facing error: one line that names the file (or entry) and the fix.

    ``exit_code`` is what ``segbench`` exits with: 2 for bad input (the convention of argparse and of
    the issue tracker's acceptance lists), 1 for failures during a run.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(SegbenchError):
    """Bad input: a wrong shape, a corrupt file, a malformed entry. Exit code 2."""


class NotImplementedYet(SegbenchError):
    """A registry entry whose model, dataset or metric does not exist yet. Exit code 2."""

    def __init__(self, what: str) -> None:
        super().__init__(f"not implemented yet: {what}")


class RunError(SegbenchError):
    """A run failed after it started (NaN loss, interrupted write). Exit code 1."""

    exit_code = 1


def warn(message: str) -> None:
    """A one-line ``segbench: warning: ...`` on stderr: a result that is computed but likely meaningless."""
    import sys

    print(f"segbench: warning: {' '.join(str(message).split())}", file=sys.stderr)
