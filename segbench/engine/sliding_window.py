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

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segbench.engine import contract
from segbench.engine.biomedical import (
    load_split,
    normalize_input,
    save_held_out_predictions,
    score_probability_maps,
)
from segbench.engine.checkpoint import load_final, run_identity
from segbench.engine.distributed import Replica, resolve_device
from segbench.errors import InputError
from segbench.families import family_spec
from segbench.models.sliding_window import WindowClassifier, build_sliding_window
from segbench.records import CELL_EXAMPLE
from segbench.schedule import Schedule, effective_schedule

#: Values of omitted schedule keys (:attr:`segbench.families.FamilySpec.schedule_defaults`).
SCHEDULE_DEFAULTS = dict(family_spec("sliding_window").schedule_defaults)


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
        self.windows = np.lib.stride_tricks.sliding_window_view(
            padded, (2 * margin + 1, 2 * margin + 1), axis=(1, 2)
        )
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
        out = np.stack(
            [np.ascontiguousarray(dihedral(w, int(k))) for w, k in zip(windows, versions, strict=True)]
        )
        return out[:, None].astype(np.float32), labels.astype(np.int64)


class SlidingWindowFamily(contract.FamilyBase):
    """The sliding-window CNN's part of the training contract (:class:`segbench.engine.contract.TrainingFamily`):
    one device; batch ``i`` is ``images_per_batch`` windows drawn from ``numpy.random.default_rng([seed, i])``,
    half centred on membrane and half on cell pixels (the paper's balanced sampling); cross entropy."""

    distributed = family_spec("sliding_window").distributed
    schedule_defaults = SCHEDULE_DEFAULTS
    channels_last_on_cpu = False

    def __init__(self, cfg: dict[str, Any], data_root: Path, run_dir: Path) -> None:
        self.cfg, self.data_root, self.run_dir = cfg, Path(data_root), Path(run_dir)
        self.extra: dict[str, Any] = {}

    def schedule(self, *, replicas: int, gpus: int) -> Schedule:
        return effective_schedule(self.cfg, replicas=replicas, gpus=gpus)

    def build_model(self, schedule: Schedule) -> torch.nn.Module:
        self.model = build_sliding_window(self.cfg)
        return self.model

    def batches(
        self, schedule: Schedule, replica: Replica, device: torch.device, start: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        _, split = load_split(self.cfg, self.data_root)
        sampler = WindowSampler(
            [normalize_input(img.image, self.cfg) for img in split.train],
            [img.instances > 0 for img in split.train],
            self.model.margin,
        )
        self.extra = {
            "window": self.model.window,
            "windows_per_batch": schedule.images_per_batch,
            "train_images": len(split.train),
            "protocol": split.protocol,
        }
        seed = int(self.cfg.get("seed", 0))
        for iteration in range(start, schedule.iterations):
            windows, labels = sampler.batch(
                np.random.default_rng([seed, iteration]), schedule.images_per_batch
            )
            yield torch.from_numpy(windows), torch.from_numpy(labels)

    def loss(
        self, net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device, amp: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        windows, labels = (part.to(device) for part in batch)
        with torch.autocast(device.type, enabled=amp):
            loss = F.cross_entropy(net(windows), labels)
        return loss, {"loss": loss.detach()}

    def summary(self) -> dict[str, Any]:
        return dict(self.extra)


def train(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None, gpus: int = 0
) -> dict[str, Any]:
    """Train (or resume) the sliding-window CNN of ``cfg`` in ``run_dir`` through the training contract
    (one device; ``gpus`` is accepted for the engine contract)."""
    return contract.train(
        SlidingWindowFamily(cfg, data_root, run_dir), cfg, run_dir, device=device, gpus=gpus
    )


@torch.no_grad()
def cell_probability(
    model: WindowClassifier,
    image: np.ndarray,
    *,
    test_time_rotations: int = 0,
    device: torch.device | None = None,
    rows_per_chunk: int = 128,
) -> np.ndarray:
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
            logits = model.dense(version[r0 : r1 + w - 1][None, None].to(dev))
            strips.append(torch.softmax(logits, dim=1)[0, 1].cpu())
        total += undo_dihedral(torch.cat(strips, dim=0), k)
    return (total / (1 + int(test_time_rotations))).numpy()


def load_trained(cfg: dict[str, Any], run_dir: Path, device: torch.device) -> WindowClassifier:
    """The run's trained classifier from its identity-checked ``model_final.pt``."""
    model = build_sliding_window(cfg)
    model.load_state_dict(load_final(run_dir, run_identity(cfg))["model"])
    return model.to(device).eval()


def evaluate(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None
) -> dict[str, Any]:
    """The ISBI errors of the dense P(cell) maps of the held-out slices; also writes the maps as the
    report's record ``predictions_val.npz`` (segbench.records)."""
    predict = cell_probability_predictor(cfg, run_dir, device=device)
    fmt, split = load_split(cfg, data_root)
    probabilities = [predict(img.image) for img in split.held_out]
    metrics = score_probability_maps(fmt, split, probabilities)
    next(iter(metrics.values()))["test_time_versions"] = (
        int(cfg.get("model", {}).get("test_time_rotations", 0)) + 1
    )
    save_held_out_predictions(Path(run_dir) / CELL_EXAMPLE, split.held_out, probabilities)
    return metrics


def cell_probability_predictor(
    cfg: dict[str, Any], run_dir: Path, *, device: str | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """image in [0, 1] (H x W) -> P(cell) of the run's trained classifier, exactly as :func:`evaluate`
    scores it (input normalisation, dense windows, test-time versions); the ISBI submission uses it."""
    dev = resolve_device(device)
    model = load_trained(cfg, run_dir, dev)
    rotations = int(cfg.get("model", {}).get("test_time_rotations", 0))

    def predict(image: np.ndarray) -> np.ndarray:
        return cell_probability(model, normalize_input(image, cfg), test_time_rotations=rotations, device=dev)

    return predict
