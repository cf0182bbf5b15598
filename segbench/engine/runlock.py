"""One writer per run directory: an exclusive ``flock`` on ``runs/.<run_id>.lock``.

Two ``segbench train`` (or ``evaluate``, or ``compare``) processes of the same run, seed and results
folder would otherwise both train and interleave ``train_log.jsonl``. The lock is advisory and held by an
open descriptor, so the kernel releases it when the holder exits in any way (``kill -9`` included), as in
:mod:`segbench.engine.gpu_pool`; a stale lock file is harmless. The lock file sits beside the run
directory (never inside it) so that setting aside a stale run or discarding an unstarted one leaves it be.
The second writer does not wait: it stops with a :class:`RunError` (exit 1) naming the run and the pid
of the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from segbench.errors import RunError


def lock_path(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.lock"


@contextlib.contextmanager
def run_lock(run_dir: Path, what: str = "train") -> Iterator[Path]:
    """Hold the run's writer lock for the block, or raise :class:`RunError` if another process holds it."""
    path = lock_path(Path(run_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").split()
            pid = holder[0] if holder else "unknown"
            raise RunError(
                f"{run_dir}: run {Path(run_dir).name} is being written by another segbench process "
                f"(pid {pid}, lock {path}); wait for it to finish or stop it, then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {what}\n".encode("ascii"), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor drops the flock
