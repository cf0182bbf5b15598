"""Processes and devices of a training run: this process's torchrun replica (:func:`init_replica`), the
wait for rank 0 (:func:`wait_for_main`), loss terms averaged over replicas (:func:`all_mean`), and the
``--device`` rule (:func:`resolve_device`, one-line errors)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from segbench.errors import InputError


@dataclass(frozen=True)
class Replica:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # a CPU (gloo) group for waiting on rank 0 (wait_for_main); None in a single process
    wait_group: Any = field(default=None, compare=False, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


DIST_TIMEOUT_ENV = "SEGBENCH_DIST_TIMEOUT_MIN"
DIST_TIMEOUT_MIN = 60.0  # > rank 0's longest lone work: one COCO val evaluation of the curve, minutes


def dist_timeout() -> timedelta:
    """How long a collective (and a wait for rank 0) may take before the job fails:
    ``$SEGBENCH_DIST_TIMEOUT_MIN`` minutes, default 60 (NCCL's own default is 10)."""
    text = os.environ.get(DIST_TIMEOUT_ENV, "").strip()
    try:
        minutes = float(text) if text else DIST_TIMEOUT_MIN
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise InputError(f"{DIST_TIMEOUT_ENV}={text!r}: expected minutes > 0, e.g. 60")
    return timedelta(minutes=minutes)


def init_replica() -> Replica:
    """Join the process group ``torchrun`` describes in WORLD_SIZE / RANK / LOCAL_RANK, if any, with an
    explicit timeout (:func:`dist_timeout`), plus a gloo group for :func:`wait_for_main`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Replica()
    timeout = dist_timeout()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timeout)
    wait_group = dist.new_group(backend="gloo", timeout=timeout)
    return Replica(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), wait_group)


def wait_for_main(replica: Replica) -> None:
    """The other replicas wait while rank 0 works alone (a point of the evaluation curve on the whole
    val split, the final save): on a CPU (gloo) barrier with the :func:`dist_timeout`, so that no NCCL
    collective is pending meanwhile (NCCL's watchdog would abort it). No-op in a single process."""
    if replica.world_size > 1:
        dist.barrier(group=replica.wait_group)


def all_mean(terms: dict[str, torch.Tensor], replica: Replica) -> dict[str, float]:
    """Loss terms averaged over replicas (so every rank sees the same NaN and stops together)."""
    names = sorted(terms)
    values = torch.stack([terms[n].float() for n in names])
    if replica.world_size > 1:
        dist.all_reduce(values)
        values /= replica.world_size
    return dict(zip(names, values.cpu().tolist(), strict=True))


DEVICE_RE = re.compile(r"cpu|cuda(:\d+)?")


def resolve_device(value: Any = None, local_rank: int = 0) -> torch.device:
    """``torch.device`` of ``--device`` (default: cuda where available, else cpu; bare ``cuda`` is this
    replica's GPU). Anything else, or CUDA on a machine without it, is a one-line :class:`InputError`."""
    if value is None or str(value).strip() == "":
        value = "cuda" if torch.cuda.is_available() else "cpu"
    text = str(value).strip()
    if not DEVICE_RE.fullmatch(text):
        raise InputError(f"--device {text!r}: expected cpu, cuda or cuda:N")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {text}: CUDA is not available on this machine; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise InputError(
                f"--device {text}: this machine has {torch.cuda.device_count()} visible GPU(s); "
                "use cuda:0 .. cuda:N-1"
            )
    return device
