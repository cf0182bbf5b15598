"""What a run keeps on disk and what a resume after ``kill -9`` reads back.

- checkpoints ``checkpoint_<iteration>.pt``: written atomically, the newest two kept, loaded with
  ``weights_only=True`` (:func:`save_checkpoint`, :func:`latest_checkpoint`, :func:`load_checkpoint`);
- the run identity every checkpoint and final model carries (:func:`run_identity`: ``run``,
  ``config_hash``, and ``dataset_hash`` once provenance records it), checked on load;
- the resume state (:func:`checkpoint_state`, :func:`resume`): model, optimizer, grad scaler, iteration and
  RNG states (:mod:`segbench.engine.seeding`);
- the final model :data:`FINAL_MODEL` (:func:`save_final`, :func:`load_final`).
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from segbench.engine.seeding import capture_rng_state, restore_rng_state
from segbench.errors import InputError
from segbench.io import read_json, write_with
from segbench.paths import FINAL_MODEL, final_model
from segbench.provenance import config_hash

log = logging.getLogger(__name__)

IDENTITY_KEYS = ("run", "config_hash", "dataset_hash")
CHECKPOINT_RE = re.compile(r"checkpoint_(\d{8})\.pt$")


# -- files --------------------------------------------------------------------------------------------
def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically and reproducibly: equal objects give equal bytes, so a file's sha256 (the
    pin of the mini backbones, DVC's cache key of the final weights) names its tensors. Saved to a file,
    torch names the archive's root folder after the file, here a random temporary name; saved to a
    buffer, the root is always ``archive``. A failed write (torch reports a full disk as ``RuntimeError:
    [enforce fail at inline_container.cc] ... unexpected pos``) becomes an ``OSError`` naming ``path``."""

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        with open(tmp, "wb") as fh:
            fh.write(buffer.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())

    write_with(path, write, "checkpoint")


def save_checkpoint(run_dir: Path, iteration: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``checkpoint_<iteration>.pt`` atomically and prune all but the newest ``keep``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"checkpoint_{iteration:08d}.pt"
    save_torch({"iteration": iteration, **state}, path)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if CHECKPOINT_RE.search(p.name))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint, or None."""
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


# -- identity -----------------------------------------------------------------------------------------
def run_identity(cfg: dict[str, Any], dataset_hash: str | None = None) -> dict[str, Any]:
    """What a checkpoint or final model must match to be used by this run: the run name and the config
    hash, plus the dataset hash where provenance records one (the slot is ``dataset_hash``)."""
    identity = {"run": cfg["run"], "config_hash": config_hash(cfg)}
    if dataset_hash is not None:
        identity["dataset_hash"] = dataset_hash
    return identity


def check_identity(state: dict[str, Any], identity: dict[str, Any], path: Path) -> None:
    """Refuse ``state`` (a checkpoint or final model) of another run or config; one-line errors.
    Checkpoints of the earlier U-Net engine carry ``run_id`` instead of ``run`` (their config hash decides)."""
    for key, value in identity.items():
        found = state.get(key)
        if key == "run" and "run" not in state and "run_id" in state:
            continue
        if found != value:
            raise InputError(
                f"{path}: written for {key}={found!r}, this run needs {value!r}; "
                "delete it or point the run at the right directory"
            )


def load_identified(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint (``weights_only``) after :func:`check_identity`."""
    state = load_checkpoint(path)
    check_identity(state, identity, path)
    return state


# -- resume -------------------------------------------------------------------------------------------
def checkpoint_state(
    identity: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
) -> dict[str, Any]:
    """What :func:`resume` needs, under the run identity (:func:`save_checkpoint` adds the iteration)."""
    state = {
        **identity,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def resume(
    run_dir: Path,
    identity: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
) -> int:
    """Load the newest checkpoint of ``run_dir`` (weights, optimizer, scaler, RNG states) into the given
    objects; returns the iteration to continue from, 0 for a fresh run."""
    path = latest_checkpoint(run_dir)
    if path is None:
        return 0
    state = load_identified(path, identity)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    log.info("%s: resuming at iteration %d", path, int(state["iteration"]))
    return int(state["iteration"])


# -- the final model ----------------------------------------------------------------------------------
def save_final(
    run_dir: Path, identity: dict[str, Any], model: torch.nn.Module, summary: dict[str, Any], **extra: Any
) -> Path:
    """``model_final.pt``: identity, weights, the training summary and family ``extra``; atomic."""
    path = Path(run_dir) / FINAL_MODEL
    save_torch({**identity, "model": model.state_dict(), "summary": summary, **extra}, path)
    return path


def load_final(run_dir: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The run's final model (``model`` = weights, ``summary``, family extras), identity-checked.

    A bare state dict written by the earlier U-Net engine is accepted only where the run's
    ``train_done.json`` records this config hash; its ``summary`` is None. Weights fetched by ``dvc pull``
    (no ``model_final.pt``, a copy under ``<results>/<scale>/weights/``) are found there
    (:func:`segbench.paths.final_model`)."""
    path = final_model(run_dir)
    if not path.is_file():
        raise InputError(
            f"{path}: no trained weights; run `segbench train` for this run first, or `dvc pull` them"
        )
    state = load_checkpoint(path)
    if "model" not in state and "config_hash" not in state:
        check_legacy_final(run_dir, identity, path)
        return {**identity, "model": state, "summary": None}
    check_identity(state, identity, path)
    return state


def check_legacy_final(run_dir: Path, identity: dict[str, Any], path: Path) -> None:
    """Accept a final model written without identity (earlier engines) only where the run's
    ``train_done.json`` records this config hash; otherwise a one-line :class:`InputError`."""
    done = Path(run_dir) / "train_done.json"
    recorded = read_json(done, "train record").get("config_hash") if done.exists() else None
    if recorded != identity["config_hash"]:
        raise InputError(
            f"{path}: written without a run identity and no matching {done.name}; delete it and retrain"
        )
