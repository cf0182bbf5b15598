"""Where training's random numbers come from: the seeds, the RNG states a checkpoint keeps, and the
loaders' private generators.

Named ``seeding`` rather than ``determinism``: :mod:`segbench.determinism` (the deterministic-algorithm
flags and the record of the ops that have none) is the other half, and :func:`seed_everything` applies it.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from segbench import determinism


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, :func:`segbench.determinism.configure`:
    torch's deterministic algorithms (warn-only), cuDNN deterministic without autotuning, deterministic
    cuBLAS workspaces. On the CPU the numbers are those of every earlier release; what stays
    non-deterministic on CUDA is recorded (:mod:`segbench.determinism`)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        determinism.configure()


def capture_rng_state() -> dict[str, Any]:
    """RNG states as tensors/lists only, so checkpoints stay loadable with ``weights_only=True``."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": list(random.getstate()[1]) + [random.getstate()[2]],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the states :func:`capture_rng_state` captured."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    py = state["python"]
    random.setstate((3, tuple(py[:-1]), py[-1]))


def loader_options(schedule: dict[str, Any], device: torch.device, seed: int) -> dict[str, Any]:
    """DataLoader keywords the training engines share: ``schedule.workers`` processes (default 4 on CUDA,
    0 on the CPU, where workers would take the cores the model trains on), pinned memory on CUDA, and a
    private generator, so that starting the loader never draws from the global RNG (exact resume)."""
    workers = int(schedule.get("workers", 4 if device.type == "cuda" else 0))
    return {
        "num_workers": workers,
        "pin_memory": device.type == "cuda",
        "generator": torch.Generator().manual_seed(int(seed)),
    }
