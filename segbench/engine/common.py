"""Pieces every training loop shares: seeding, the step schedule with warm-up, checkpoints that survive
``kill -9`` (atomic, newest-wins, loaded with ``weights_only=True``), and the non-finite-loss stop."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segbench import determinism
from segbench.errors import InputError, RunError
from segbench.io import write_with

CHECKPOINT_RE = re.compile(r"checkpoint_(\d{8})\.pt$")


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


def check_finite(
    loss: torch.Tensor, iteration: int, run_dir: Path, parts: dict[str, float] | None = None
) -> None:
    """Stop the run on a NaN/inf loss, naming the iteration and keeping the last good checkpoint."""
    if not math.isfinite(float(loss)):
        detail = ", ".join(f"{k}={v:.4g}" for k, v in (parts or {}).items())
        last = latest_checkpoint(run_dir)
        keep = f"last good checkpoint kept: {last}" if last else "no checkpoint written yet"
        raise RunError(
            f"{run_dir}: non-finite loss at iteration {iteration} ({detail}); {keep}; "
            "lower the learning rate or check the data, then rerun to resume"
        )


def save_checkpoint(run_dir: Path, iteration: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``checkpoint_<iteration>.pt`` atomically and prune all but the newest ``keep``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"checkpoint_{iteration:08d}.pt"
    save_torch({"iteration": iteration, **state}, path)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically; a failed write (torch reports a full disk as ``RuntimeError: [enforce
    fail at inline_container.cc] ... unexpected pos``) becomes an ``OSError`` naming ``path``."""
    write_with(path, lambda tmp: torch.save(obj, tmp), "checkpoint")


def list_checkpoints(run_dir: Path) -> list[Path]:
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if CHECKPOINT_RE.search(p.name))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: Path, expected: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``). ``expected`` maps keys (e.g. ``run``,
    ``config_hash``) to the values this run requires; a checkpoint of another variant is refused."""
    if not Path(path).exists():
        raise InputError(
            f"{path}: missing (model weights are not kept in git, so a clone has none); retrain "
            "the run: `segbench train ... --force`, or `make reproduce FORCE=1`"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling/zip error means a corrupt file
        raise InputError(
            f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to retrain"
        ) from None
    for key, value in (expected or {}).items():
        if state.get(key) != value:
            raise InputError(
                f"{path}: checkpoint is for {key}={state.get(key)!r}, this run needs {value!r}; "
                "delete it or point the run at the right directory"
            )
    return state


def capture_rng_state() -> dict[str, Any]:
    """RNG states as tensors/lists only, so checkpoints stay loadable with ``weights_only=True``."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": list(random.getstate()[1]) + [random.getstate()[2]],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    py = state["python"]
    random.setstate((3, tuple(py[:-1]), py[-1]))
