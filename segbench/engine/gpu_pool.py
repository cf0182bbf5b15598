"""Distinct GPUs for concurrent jobs on one multi-GPU machine.

Snakemake counts GPUs (``--resources gpu=N``) but never says *which* GPU a job gets, so eight 1-GPU
jobs on an 8-GPU box would all land on GPU 0. With ``SEGBENCH_GPU_POOL=0,1,2,3,4,5,6,7`` set,
``segbench train`` claims as many ids from the pool as it was granted (``--gpus``) and sets
``CUDA_VISIBLE_DEVICES`` to them before CUDA starts. A claim is an exclusive ``flock`` on
``<lock dir>/gpu<id>.lock``: the kernel drops it when the process exits, however it exits (``kill -9``
included), so a crashed job never leaks a GPU. The holder writes its pid and run into the lock file.

A job that finds too few free ids waits for them, up to ``$SEGBENCH_GPU_CLAIM_TIMEOUT`` seconds (default
600), then fails with one line naming the holders. Under torchrun (``--gpus N``, N processes) local rank 0
claims the N ids for the whole job and publishes them in ``torchrun-<run id>-<agent pid>.ids`` beside the
locks; the other ranks read that file, so every rank sees the same ``CUDA_VISIBLE_DEVICES`` and uses the
GPU of its local rank (a rank claiming N ids itself would wait forever for rank 0's).
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from segbench.errors import InputError

POOL_ENV = "SEGBENCH_GPU_POOL"
LOCK_DIR_ENV = "SEGBENCH_GPU_LOCK_DIR"
TIMEOUT_ENV = "SEGBENCH_GPU_CLAIM_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
POLL_S = 0.5


@dataclass
class GpuClaim:
    """GPU ids held by this process; ``release()`` (or process exit) frees them."""

    ids: list[str]
    _files: list[IO[bytes]] = field(default_factory=list, repr=False)
    _published: Path | None = field(default=None, repr=False)  # torchrun: the ids file of the ranks

    def release(self) -> None:
        for handle in self._files:
            handle.close()  # closing the descriptor drops its flock
        self._files.clear()
        if self._published is not None:
            self._published.unlink(missing_ok=True)
            self._published = None


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


def claim_timeout(environ: dict[str, str] | None = None) -> float:
    """Seconds a claim waits for free ids: ``$SEGBENCH_GPU_CLAIM_TIMEOUT`` (``inf``: forever), default 600."""
    env = os.environ if environ is None else environ
    text = env.get(TIMEOUT_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InputError(f"{TIMEOUT_ENV}={text!r}: expected seconds >= 0 (e.g. 600, or inf to wait forever)")
    return value


def _try_lock(path: Path) -> IO[bytes] | None:
    handle = open(path, "a+b")  # noqa: SIM115 - the open descriptor *is* the claim
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _mark_holder(handle: IO[bytes], holder: str) -> None:
    """Write who holds the lock into its file (read by a claim that times out)."""
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}: {holder}\n".encode())
    handle.flush()


def holder_of(path: Path) -> str:
    """The holder a lock file names (``pid N: what``), or ``holder unknown`` for an empty or unreadable one."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0][:200] if text else "holder unknown"


def claim(
    count: int,
    pool: list[str],
    *,
    lock_dir: Path | None = None,
    timeout_s: float | None = None,
    holder: str | None = None,
) -> GpuClaim:
    """Claim ``count`` free ids of ``pool``, waiting until enough are free (``timeout_s``: give up after,
    with one line naming the holder of each busy id; ``None``: wait forever). ``holder`` (default: this
    process's command line) is written into each lock file claimed.

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
    holder = holder or shlex.join(sys.argv)[:160]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        got, busy = GpuClaim(ids=[]), []
        for gpu in pool:
            handle = _try_lock(lock_dir / f"gpu{gpu}.lock")
            if handle is None:
                busy.append(gpu)
                continue
            got.ids.append(gpu)
            got._files.append(handle)
            if len(got.ids) == count:
                for claimed in got._files:
                    _mark_holder(claimed, holder)
                return got
        got.release()
        if deadline is not None and time.monotonic() >= deadline:
            held = "; ".join(f"GPU {gpu} held by {holder_of(lock_dir / f'gpu{gpu}.lock')}" for gpu in busy)
            raise InputError(
                f"no {count} free GPU(s) in {POOL_ENV}={','.join(pool)} after {timeout_s:g} s ({held}; "
                f"locks in {lock_dir}); wait for those jobs or stop them, lower --resources gpu, or "
                f"raise {TIMEOUT_ENV}"
            )
        time.sleep(POLL_S)


def claim_from_environment(
    count: int, environ: dict[str, str] | None = None, *, holder: str | None = None
) -> GpuClaim | None:
    """With ``SEGBENCH_GPU_POOL`` set and ``count`` >= 1: claim ids and set ``CUDA_VISIBLE_DEVICES``
    (under torchrun: local rank 0 claims for all ranks, the others read its ids; module docstring).

    Returns ``None`` (and changes nothing) when no pool is set or no GPU was granted. Call it before
    anything initialises CUDA: the driver reads ``CUDA_VISIBLE_DEVICES`` once per process.
    """
    env = os.environ if environ is None else environ
    text = env.get(POOL_ENV, "")
    if not text.strip() or count < 1:
        return None
    pool, timeout_s = parse_pool(text), claim_timeout(env)
    published = _published_ids(env)
    if published is None or int(env.get("LOCAL_RANK", "0")) == 0:
        got = claim(count, pool, timeout_s=None if timeout_s == float("inf") else timeout_s, holder=holder)
        if published is not None:  # torchrun: the other local ranks read the ids from this file
            _write_ids(published, got.ids)
            got._published = published
        atexit.register(got.release)
    else:
        got = GpuClaim(ids=_read_ids(published, timeout_s + 30.0))
    env["CUDA_VISIBLE_DEVICES"] = ",".join(got.ids)
    return got


def _published_ids(env: dict[str, str] | os._Environ[str]) -> Path | None:
    """Under torchrun with several local ranks: the file in which local rank 0 publishes its claim, named
    by the job (``TORCHELASTIC_RUN_ID``) and its agent (the ranks' parent process); else ``None``."""
    if int(env.get("LOCAL_WORLD_SIZE", "1")) <= 1:
        return None
    run_id = "".join(c for c in env.get("TORCHELASTIC_RUN_ID", "none") if c.isalnum() or c in "-_")[:64]
    return default_lock_dir() / f"torchrun-{run_id}-{os.getppid()}.ids"


def _write_ids(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(",".join(ids), encoding="utf-8")
    tmp.replace(path)  # atomic: a reader sees all ids or no file


def _read_ids(path: Path, timeout_s: float) -> list[str]:
    """The ids local rank 0 claimed for this torchrun job, waiting for it up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() >= deadline:
            raise InputError(
                f"{path}: local rank 0 published no GPU ids after {timeout_s:g} s (its claim failed or "
                f"waits; see its error); set {TIMEOUT_ENV} or free GPUs of {POOL_ENV}"
            )
        time.sleep(POLL_S)
    return parse_pool(path.read_text(encoding="utf-8"))
