"""Distinct GPUs for concurrent jobs on one multi-GPU machine.

Snakemake counts GPUs (``--resources gpu=N``) but never says *which* GPU a job gets, so eight 1-GPU
jobs on an 8-GPU box would all land on GPU 0. With ``SEGBENCH_GPU_POOL=0,1,2,3,4,5,6,7`` set,
``segbench train`` claims as many ids from the pool as it was granted (``--gpus``) and sets
``CUDA_VISIBLE_DEVICES`` to them before CUDA starts. A claim is an exclusive ``flock`` on
``<lock dir>/gpu<id>.lock``: the kernel drops it when the process exits, however it exits (``kill -9``
included), so a crashed job never leaks a GPU. A job that finds too few free ids waits for them.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from segbench.errors import InputError

POOL_ENV = "SEGBENCH_GPU_POOL"
LOCK_DIR_ENV = "SEGBENCH_GPU_LOCK_DIR"
POLL_S = 0.5


@dataclass
class GpuClaim:
    """GPU ids held by this process; ``release()`` (or process exit) frees them."""

    ids: list[str]
    _files: list[IO[bytes]] = field(default_factory=list, repr=False)

    def release(self) -> None:
        for handle in self._files:
            handle.close()  # closing the descriptor drops its flock
        self._files.clear()


def parse_pool(text: str) -> list[str]:
    """``"0,1, 2"`` -> ``["0", "1", "2"]``; ids must be distinct non-negative integers (or GPU UUIDs)."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise InputError(f"{POOL_ENV}={text!r} names no GPU; set it to the ids to share, e.g. 0,1,2,3")
    if len(set(ids)) != len(ids):
        raise InputError(f"{POOL_ENV}={text!r} repeats a GPU id; list each id once")
    for gpu in ids:
        if not (gpu.isdigit() or gpu.startswith(("GPU-", "MIG-"))):
            raise InputError(f"{POOL_ENV}: {gpu!r} is not a GPU index or UUID (see `nvidia-smi -L`)")
    return ids


def default_lock_dir() -> Path:
    return Path(
        os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / f"segbench-gpu-locks-{os.getuid()}"
    )


def _try_lock(path: Path) -> IO[bytes] | None:
    handle = open(path, "a+b")  # noqa: SIM115 - the open descriptor *is* the claim
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def claim(
    count: int, pool: list[str], *, lock_dir: Path | None = None, timeout_s: float | None = None
) -> GpuClaim:
    """Claim ``count`` free ids of ``pool``, waiting until enough are free (``timeout_s``: give up after).

    All-or-nothing: ids claimed in a round that finds too few are released before the next round, so
    two jobs waiting for two GPUs each cannot deadlock holding one apiece.
    """
    if count < 1:
        raise InputError(f"a GPU claim needs at least 1 GPU, not {count}")
    if count > len(pool):
        raise InputError(
            f"{count} GPUs requested but {POOL_ENV} lists {len(pool)} ({','.join(pool)}); "
            "lower --resources gpu or extend the pool"
        )
    lock_dir = lock_dir or default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        got = GpuClaim(ids=[])
        for gpu in pool:
            handle = _try_lock(lock_dir / f"gpu{gpu}.lock")
            if handle is not None:
                got.ids.append(gpu)
                got._files.append(handle)
                if len(got.ids) == count:
                    return got
        got.release()
        if deadline is not None and time.monotonic() >= deadline:
            raise InputError(
                f"no {count} free GPU(s) in {POOL_ENV}={','.join(pool)} after {timeout_s:.0f} s "
                f"(locks in {lock_dir}); wait for running jobs or lower --resources gpu"
            )
        time.sleep(POLL_S)


def claim_from_environment(count: int, environ: dict[str, str] | None = None) -> GpuClaim | None:
    """With ``SEGBENCH_GPU_POOL`` set and ``count`` >= 1: claim ids and set ``CUDA_VISIBLE_DEVICES``.

    Returns ``None`` (and changes nothing) when no pool is set or no GPU was granted. Call it before
    anything initialises CUDA: the driver reads ``CUDA_VISIBLE_DEVICES`` once per process.
    """
    env = os.environ if environ is None else environ
    text = env.get(POOL_ENV, "")
    if not text.strip() or count < 1:
        return None
    got = claim(count, parse_pool(text))
    env["CUDA_VISIBLE_DEVICES"] = ",".join(got.ids)
    return got
