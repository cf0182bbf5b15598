"""Engine of the sliding-window CNN baseline (Ciresan et al., NIPS 2012; model: segbench.models.sliding_window).

Training (their section 2): per-pixel membrane / non-membrane classification of the window centred on the
pixel, on balanced samples (half membrane, half non-membrane pixels per minibatch, drawn uniformly from the
training slices), each window randomly mirrored / rotated by multiples of 90 degrees, mirror padding at the
image borders; softmax cross entropy, SGD with momentum. Iteration i draws its minibatch from
``numpy.random.default_rng([seed, i])`` and checkpoints carry model, optimizer and RNG states, so a
resumed run ends with the same weights.

Evaluation: dense inference with the fully-convolutional equivalent (``WindowClassifier.dense``) on the
mirror-padded held-out slices, averaged over ``model.test_time_rotations`` extra dihedral versions (the
paper averaged rotated/mirrored inputs too), scored exactly like the U-Net's P(cell) maps (the ISBI
errors). Not done here: the paper's averaging of four nets (N1-N4) and its calibration / median filtering.

Uses the U-Net engine's data split and scoring (``load_split``, ``normalize_input``,
``score_probability_maps``), so all three rows of U-Net Table 1 see the same held-out slices.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segbench.engine.common import (
    capture_rng_state,
    check_finite,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
    step_lr_factor,
)
from segbench.engine.unet import load_split, normalize_input, pick_device, score_probability_maps
from segbench.errors import InputError
from segbench.io import append_jsonl, atomic_path, read_jsonl, write_text_atomic
from segbench.models.sliding_window import WindowClassifier, build_sliding_window
from segbench.provenance import config_hash

FINAL_WEIGHTS = "model_final.pt"
TRAIN_LOG = "train_log.jsonl"


def dihedral(x: np.ndarray | torch.Tensor, k: int) -> Any:
    """Version ``k`` (0-7) of the dihedral group on the last two axes: ``k % 4`` quarter turns, then a
    horizontal mirror for ``k >= 4``."""
    if isinstance(x, torch.Tensor):
        x = torch.rot90(x, k % 4, dims=(-2, -1))
        return torch.flip(x, dims=(-1,)) if k >= 4 else x
    x = np.rot90(x, k % 4, axes=(-2, -1))
    return x[..., ::-1] if k >= 4 else x


def undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


class WindowSampler:
    """Balanced minibatches of windows (half membrane, half cell centre pixels) from mirror-padded slices."""

    def __init__(self, images: list[np.ndarray], cell_masks: list[np.ndarray], margin: int) -> None:
        if not images:
            raise InputError("sliding-window CNN: the training split is empty")
        self.margin = margin
        padded = np.stack([np.pad(img.astype(np.float32), margin, mode="reflect") for img in images])
        self.windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * margin + 1, 2 * margin + 1),
                                                                axis=(1, 2))
        cells = np.stack([np.asarray(m, bool) for m in cell_masks])
        self.shape = cells.shape
        self.by_class = [np.flatnonzero(~cells).astype(np.int64), np.flatnonzero(cells).astype(np.int64)]
        if any(len(c) == 0 for c in self.by_class):
            raise InputError("sliding-window CNN: the training slices need both membrane and cell pixels")

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(size) % 2  # balanced: membrane (0) and cell (1) alternate
        flat = np.empty(size, np.int64)
        for cls in (0, 1):
            pick = labels == cls
            flat[pick] = self.by_class[cls][rng.integers(len(self.by_class[cls]), size=int(pick.sum()))]
        s, y, x = np.unravel_index(flat, self.shape)
        windows = self.windows[s, y, x]  # (size, w, w), copied
        versions = rng.integers(8, size=size)
        out = np.stack([np.ascontiguousarray(dihedral(w, int(k))) for w, k in zip(windows, versions, strict=True)])
        return out[:, None].astype(np.float32), labels.astype(np.int64)


def train(cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None,
          gpus: int = 0) -> dict[str, Any]:
    """Train (or resume) the sliding-window CNN of ``cfg`` in ``run_dir`` (one device; ``gpus`` unused)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    schedule = cfg["schedule"]
    iterations, seed = int(schedule["iterations"]), int(cfg.get("seed", 0))
    checkpoint_every = int(schedule.get("checkpoint_every", iterations)) or iterations
    batch_size = int(schedule.get("batch_size", 64))
    seed_everything(seed)
    dev = pick_device(device)
    model = build_sliding_window(cfg).to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=float(schedule["lr"]),
                                momentum=float(schedule.get("momentum", 0.9)),
                                weight_decay=float(schedule.get("weight_decay", 0.0)))
    identity = {"run_id": cfg.get("run_id", cfg.get("run")), "config_hash": config_hash(cfg)}
    start = 0
    path = latest_checkpoint(run_dir)
    if path is not None:
        state = load_checkpoint(path, expected=identity)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"])
        start = int(state["iteration"])
    log_path = run_dir / TRAIN_LOG
    if log_path.exists():  # drop log lines of iterations the checkpoint does not contain
        kept = [r for r in read_jsonl(log_path) if r.get("iteration", 0) <= start]
        write_text_atomic(log_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    _, split = load_split(cfg, data_root)
    sampler = WindowSampler([normalize_input(img.image, cfg) for img in split.train],
                            [img.instances > 0 for img in split.train], model.margin)
    model.train()
    loss_value = float("nan")
    tic = time.perf_counter()
    for iteration in range(start, iterations):
        windows, labels = sampler.batch(np.random.default_rng([seed, iteration]), batch_size)
        lr = float(schedule["lr"]) * step_lr_factor(iteration, list(schedule.get("lr_decay_at", [])),
                                                    float(schedule.get("lr_decay_factor", 0.1)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = F.cross_entropy(model(torch.from_numpy(windows).to(dev)), torch.from_numpy(labels).to(dev))
        check_finite(loss.detach(), iteration, run_dir)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        toc = time.perf_counter()
        append_jsonl(log_path, {"iteration": iteration + 1, "loss": loss_value, "lr": lr,
                                "seconds": round(toc - tic, 4)})
        tic = toc
        if (iteration + 1) % checkpoint_every == 0 or iteration + 1 == iterations:
            save_checkpoint(run_dir, iteration + 1, {**identity, "model": model.state_dict(),
                                                     "optimizer": optimizer.state_dict(),
                                                     "rng": capture_rng_state()})
    with atomic_path(run_dir / FINAL_WEIGHTS) as tmp:
        torch.save(model.state_dict(), tmp)
    return {"iterations": iterations, "resumed_from": start, "final_loss": loss_value, "batch_size": batch_size,
            "window": model.window, "train_images": len(split.train), "protocol": split.protocol,
            "device": str(dev)}


@torch.no_grad()
def cell_probability(model: WindowClassifier, image: np.ndarray, *, test_time_rotations: int = 0,
                     device: torch.device | None = None, rows_per_chunk: int = 128) -> np.ndarray:
    """P(cell) (H x W, float32) of every pixel: dense inference on the mirror-padded image, averaged over
    ``1 + test_time_rotations`` dihedral versions; computed in horizontal strips to bound memory."""
    dev = device or torch.device("cpu")
    m, w = model.margin, model.window
    padded = torch.from_numpy(np.pad(image.astype(np.float32), m, mode="reflect"))
    total = torch.zeros(image.shape, dtype=torch.float32)
    for k in range(1 + int(test_time_rotations)):
        version = dihedral(padded, k).contiguous()
        out_h = version.shape[0] - w + 1
        strips = []
        for r0 in range(0, out_h, rows_per_chunk):
            r1 = min(out_h, r0 + rows_per_chunk)
            logits = model.dense(version[r0:r1 + w - 1][None, None].to(dev))
            strips.append(torch.softmax(logits, dim=1)[0, 1].cpu())
        total += undo_dihedral(torch.cat(strips, dim=0), k)
    return (total / (1 + int(test_time_rotations))).numpy()


def load_trained(cfg: dict[str, Any], run_dir: Path, device: torch.device) -> WindowClassifier:
    path = Path(run_dir) / FINAL_WEIGHTS
    if not path.is_file():
        raise InputError(f"{path}: no trained weights; run `segbench train` for this run first")
    model = build_sliding_window(cfg)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"{path}: weights do not fit this run's sliding-window CNN ({type(exc).__name__}); "
                         "delete them and retrain") from None
    return model.to(device).eval()


def evaluate(cfg: dict[str, Any], run_dir: Path, data_root: Path, *,
             device: str | None = None) -> dict[str, Any]:
    """The ISBI errors of the dense P(cell) maps of the held-out slices."""
    dev = pick_device(device)
    model = load_trained(cfg, run_dir, dev)
    fmt, split = load_split(cfg, data_root)
    rotations = int(cfg.get("model", {}).get("test_time_rotations", 0))
    probabilities = [cell_probability(model, normalize_input(img.image, cfg), test_time_rotations=rotations,
                                      device=dev) for img in split.held_out]
    metrics = score_probability_maps(fmt, split, probabilities)
    next(iter(metrics.values()))["test_time_versions"] = rotations + 1
    return metrics
