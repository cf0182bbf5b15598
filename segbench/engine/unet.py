"""U-Net training and evaluation (Ronneberger et al. 2015, sections 3-4; contract: docs/architecture.md).

Training (section 3): SGD, momentum 0.99, one large tile per step (``cfg["input"]["tile"]``, rounded up to
the nearest valid unpadded tile), pixel-wise softmax cross entropy weighted by the map of equation 2
(mean over the output pixels), elastic deformation + rigid motions + grey-value variation (section 3.1).
The augmentation of iteration i is drawn from ``numpy.random.default_rng([seed, i])``, and checkpoints carry
model, optimizer and torch RNG states, so a resumed run ends with the same weights as an uninterrupted one.

Evaluation: overlap-tile inference (Figure 2) with ``model.test_time_rotations`` extra dihedral versions,
on held-out data (:func:`segbench.data.biomedical.held_out_split`): the ISBI 2012 metrics of the P(cell)
stack, or the cell tracking SEG of the 4-connected components of P(cell) > 0.5 (the weight map teaches the
network the separating borders, so no further post-processing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from segbench.component_registry import Registry
from segbench.data.augment import AugmentParams, augment_tile
from segbench.data.biomedical import LabelledImage, Split, held_out_split, load_labelled_images
from segbench.data.registry import dataset_paths
from segbench.data.weight_map import PAPER_SIGMA_PX, PAPER_W0, cached_weight_map, training_target
from segbench.engine.common import (
    capture_rng_state,
    check_finite,
    latest_checkpoint,
    load_checkpoint,
    loader_options,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
    step_lr_factor,
)
from segbench.engine.overlap_tile import TileGeometry, cell_probability_fn
from segbench.errors import InputError
from segbench.io import append_jsonl, atomic_path, read_jsonl, write_text_atomic
from segbench.models import build as build_model
from segbench.models.unet import (
    UNet,
    smallest_valid_input_at_least,
    valid_input_size,
    valid_output_size,
)
from segbench.provenance import config_hash
from segbench.records import CELL_EXAMPLE, OVERLAP_TILE

FINAL_WEIGHTS = "model_final.pt"
TRAIN_LOG = "train_log.jsonl"
EVAL_MIN_OUTPUT = 132  # evaluation tiles give at least this many valid output pixels per side (speed)


# ----------------------------------------------------------------------------------------------------------
# Data shared with the classical engine
# ----------------------------------------------------------------------------------------------------------
def load_split(cfg: dict[str, Any], data_root: Path) -> tuple[str, Split]:
    """The dataset of a run config, split into training images and held-out evaluation images."""
    fmt, groups = load_labelled_images(dataset_paths(cfg["dataset"]["name"], Path(data_root)))
    split_cfg = cfg.get("split", {})
    return fmt, held_out_split(fmt, groups, fold=split_cfg.get("fold"), folds=split_cfg.get("folds", 5))


INPUT_NORMALIZATIONS = ("unit_range", "standardize")


def normalize_input(image: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """The network's input for a [0, 1] image: ``input.normalize`` ``unit_range`` keeps it,
    ``standardize`` (the default) maps each image to zero mean and unit variance.

    The paper does not say how intensities are scaled. Standardising matters on DIC images, whose cells
    differ from the background by relief, not by mean intensity: on hela_mini (800 iterations, seed 0)
    SEG is 0.000 with [0, 1] inputs and 0.125 standardised.
    """
    mode = cfg.get("input", {}).get("normalize", "standardize")
    if mode not in INPUT_NORMALIZATIONS:
        raise InputError(f"input key 'normalize': {mode!r} is not one of {', '.join(INPUT_NORMALIZATIONS)}")
    if mode == "unit_range":
        return image
    return ((image - image.mean()) / max(float(image.std()), 1e-6)).astype(np.float32)


def score_probability_maps(fmt: str, split: Split, cell_probability: list[np.ndarray]) -> dict[str, Any]:
    """Metrics of P(cell) maps of the held-out images: ``{"isbi": ...}`` or ``{"ctc": ...}``."""
    held_out = [img.name for img in split.held_out]
    if fmt == "isbi2012":
        from segbench.metrics.isbi_pooled import isbi_metrics_with_counts  # counts: pooled over folds

        labels = np.stack([np.where(img.instances > 0, 255, 0).astype(np.uint8) for img in split.held_out])
        pred = np.clip(np.stack(cell_probability), 0.0, 1.0).astype(np.float32)
        return {"isbi": {**isbi_metrics_with_counts(pred, labels), "protocol": split.protocol, "held_out": held_out}}
    from scipy import ndimage

    from segbench.metrics.ctc import seg_metrics

    four = ndimage.generate_binary_structure(2, 1)
    shapes = {img.instances.shape for img in split.held_out}
    if len(shapes) != 1:
        raise InputError(f"held-out frames have several sizes {sorted(shapes)}; "
                         "evaluate one sequence at a time")
    pred = np.stack([ndimage.label(p > 0.5, structure=four)[0] for p in cell_probability])
    gt = np.stack([img.instances for img in split.held_out])
    return {"ctc": {**seg_metrics(pred, gt), "protocol": split.protocol, "held_out": held_out}}


# ----------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------
def training_tiles(model: UNet, tile: int) -> tuple[int, int]:
    """(input, output) tile sides: the smallest valid input >= ``tile`` and its valid output
    (padded nets: ``tile`` rounded up to a multiple of 2**depth, output = input)."""
    if model.padding:
        side = -(-tile // model.size_multiple) * model.size_multiple
        return side, side
    side = smallest_valid_input_at_least(tile, model.depth)
    return side, valid_output_size(side, model.depth)


def evaluation_tile(model: UNet, train_input: int, cfg: dict[str, Any]) -> int:
    """``input.eval_tile`` if given, else the valid (unpadded) tile >= the training tile that gives at
    least 132 output pixels per side (small training tiles would make inference needlessly slow)."""
    if "eval_tile" in cfg.get("input", {}):
        return int(cfg["input"]["eval_tile"])
    return max(smallest_valid_input_at_least(train_input, model.depth),
               valid_input_size(EVAL_MIN_OUTPUT, model.depth))


def augment_params(model_cfg: dict[str, Any]) -> AugmentParams:
    """``model.elastic``: true (paper: 3x3 grid, 10 px), false (rigid + grey only) or {grid, std_px}."""
    elastic = model_cfg.get("elastic", True)
    if isinstance(elastic, dict):
        return AugmentParams(grid=int(elastic.get("grid", 3)), std_px=float(elastic.get("std_px", 10.0)))
    return AugmentParams(elastic=bool(elastic))


def weight_map_params(model_cfg: dict[str, Any]) -> tuple[float, float] | None:
    """``model.weight_map``: true (w0 = 10, sigma = 5 px), false (unit weights) or {w0, sigma_px}."""
    spec = model_cfg.get("weight_map", True)
    if spec is False:
        return None
    spec = spec if isinstance(spec, dict) else {}
    return float(spec.get("w0", PAPER_W0)), float(spec.get("sigma_px", PAPER_SIGMA_PX))


def pick_device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


# ----------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------
def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Equation 1: -sum_x w(x) log p_l(x)(x) of the pixel-wise softmax, divided by the pixel count."""
    return (F.cross_entropy(logits, target, reduction="none") * weights).mean()


UnetLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
UNET_LOSSES: Registry[UnetLoss] = Registry("U-Net loss", {"weighted_ce": weighted_cross_entropy})


def register_unet_loss(name: str, loss: UnetLoss, *, override: bool = False) -> None:
    """Add a training loss ``f(logits, target, weights) -> scalar`` under ``name`` (model key ``loss``); a
    name taken by another loss is an error unless ``override=True`` (:mod:`segbench.component_registry`)."""
    UNET_LOSSES.register(name, loss, override=override)


def unet_loss(model_cfg: dict[str, Any]) -> UnetLoss:
    name = model_cfg.get("loss", "weighted_ce")
    if name not in UNET_LOSSES:
        raise InputError(f"model key 'loss': unknown U-Net loss {name!r}; valid: {', '.join(UNET_LOSSES)}")
    return UNET_LOSSES[name]


class TrainingSet:
    """Training images with their targets and weight maps; ``sample`` draws one augmented tile."""

    def __init__(self, images: list[LabelledImage], weight_params: tuple[float, float] | None,
                 cache_dir: Path, normalize: Callable[[np.ndarray], np.ndarray] = lambda image: image) -> None:
        if not images:
            raise InputError("U-Net training split is empty; the dataset needs more annotated images")
        self.images = [normalize(img.image) for img in images]
        self.targets = [training_target(img.instances) for img in images]
        if weight_params is None:
            self.weights = [np.ones(img.instances.shape, np.float32) for img in images]
        else:
            w0, sigma = weight_params
            self.weights = [cached_weight_map(img.label_file, img.index, img.instances, cache_dir, w0, sigma)
                            for img in images]

    def sample(self, rng: np.random.Generator, input_tile: int, output_tile: int,
               params: AugmentParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = int(rng.integers(len(self.images)))
        return augment_tile(rng, self.images[k], self.targets[k], self.weights[k],
                            (input_tile, input_tile), (output_tile, output_tile), params)


class IterationBatches(torch.utils.data.Dataset):
    """Item ``i`` is the augmented batch of training iteration ``i``, drawn from ``default_rng([seed, i])``.

    Indexing by iteration makes the batches independent of how many DataLoader workers draw them (and of
    resuming), so a GPU run can augment in worker processes while the model trains, with the same
    batches as a single-process CPU run.
    """

    def __init__(self, data: TrainingSet, seed: int, batch_size: int, input_tile: int, output_tile: int,
                 params: AugmentParams) -> None:
        self.data, self.seed, self.batch_size = data, seed, batch_size
        self.input_tile, self.output_tile, self.params = input_tile, output_tile, params

    def __len__(self) -> int:  # iterations are drawn by index; the sampler decides which
        return 2**31 - 1

    def __getitem__(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, iteration])
        batch = [self.data.sample(rng, self.input_tile, self.output_tile, self.params)
                 for _ in range(self.batch_size)]
        images, targets, weights = (np.stack(parts) for parts in zip(*batch, strict=True))
        return torch.from_numpy(images), torch.from_numpy(targets), torch.from_numpy(weights)


def iteration_loader(batches: IterationBatches, start: int, iterations: int, schedule: dict[str, Any],
                     device: torch.device) -> torch.utils.data.DataLoader:
    """Batches ``start .. iterations - 1`` in order (workers, pinned memory, private generator:
    :func:`segbench.engine.common.loader_options`)."""
    options = loader_options(schedule, device, batches.seed)
    return torch.utils.data.DataLoader(batches, sampler=range(start, iterations), batch_size=None,
                                       prefetch_factor=2 if options["num_workers"] else None, **options)


def weight_cache_dir(data_root: Path, run_dir: Path) -> Path:
    """``<data_root>/cache/unet_weight_maps`` where writable (shared by runs), else inside the run dir."""
    for candidate in (Path(data_root) / "cache" / "unet_weight_maps", Path(run_dir) / "weight_map_cache"):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            probe = candidate / ".write_probe"
            probe.touch()
            probe.unlink()
            return candidate
        except OSError:
            continue
    raise InputError(f"{run_dir}: cannot write the weight-map cache; make the run directory writable")


def train(cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None,
          gpus: int = 0) -> dict[str, Any]:
    """Train (or resume) the U-Net of ``cfg`` in ``run_dir``; writes checkpoints, the log, ``model_final.pt``.
    One device (``gpus`` is accepted for the engine contract; batch 1 leaves nothing to split across GPUs)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    schedule = cfg["schedule"]
    iterations, seed = int(schedule["iterations"]), int(cfg.get("seed", 0))
    checkpoint_every = int(schedule.get("checkpoint_every", iterations)) or iterations
    batch_size = int(schedule.get("batch_size", 1))
    seed_everything(seed)
    dev = pick_device(device)
    model = build_model(cfg).to(dev)
    loss_fn = unet_loss(cfg["model"])
    optimizer = torch.optim.SGD(model.parameters(), lr=float(schedule["lr"]),
                                momentum=float(schedule.get("momentum", 0.99)),
                                weight_decay=float(schedule.get("weight_decay", 0.0)))
    identity = {"run_id": cfg.get("run_id", cfg.get("run")), "config_hash": config_hash(cfg)}
    start = _resume(run_dir, model, optimizer, identity)
    log_path = run_dir / TRAIN_LOG
    if log_path.exists():  # drop log lines of iterations the checkpoint does not contain
        kept = [r for r in read_jsonl(log_path) if r.get("iteration", 0) <= start]
        write_text_atomic(log_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    _, split = load_split(cfg, data_root)
    model_cfg = cfg.get("model", {})
    data = TrainingSet(split.train, weight_map_params(model_cfg), weight_cache_dir(data_root, run_dir),
                       normalize=lambda image: normalize_input(image, cfg))
    input_tile, output_tile = training_tiles(model, int(cfg["input"]["tile"]))
    params = augment_params(model_cfg)

    model.train()
    loss_value = float("nan")
    progress = tqdm(range(start, iterations), initial=start, total=iterations,
                    desc=f"unet {identity['run_id']}",
                    disable=None, leave=False)
    batches = iteration_loader(IterationBatches(data, seed, batch_size, input_tile, output_tile, params),
                               start, iterations, schedule, dev)
    tic = time.perf_counter()
    for iteration, batch in zip(progress, batches, strict=True):
        images, targets, weights = (part.to(dev, non_blocking=True) for part in batch)
        lr = float(schedule["lr"]) * step_lr_factor(iteration, list(schedule.get("lr_decay_at", [])),
                                                    float(schedule.get("lr_decay_factor", 0.1)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = loss_fn(model(images[:, None]), targets.long(), weights)
        check_finite(loss.detach(), iteration, run_dir)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        progress.set_postfix(loss=f"{loss_value:.4f}")
        toc = time.perf_counter()
        append_jsonl(log_path, {"iteration": iteration + 1, "loss": loss_value, "lr": lr,
                                "seconds": round(toc - tic, 4)})
        tic = toc
        if (iteration + 1) % checkpoint_every == 0 or iteration + 1 == iterations:
            save_checkpoint(run_dir, iteration + 1, {**identity, "model": model.state_dict(),
                                                     "optimizer": optimizer.state_dict(),
                                                     "rng": capture_rng_state()})
    progress.close()
    with atomic_path(run_dir / FINAL_WEIGHTS) as tmp:
        torch.save(model.state_dict(), tmp)
    return {"iterations": iterations, "resumed_from": start, "final_loss": loss_value,
            "input_tile": input_tile, "output_tile": output_tile, "train_images": len(split.train),
            "protocol": split.protocol, "device": str(dev)}


def _resume(run_dir: Path, model: UNet, optimizer: torch.optim.Optimizer, identity: dict[str, Any]) -> int:
    """Restore the newest checkpoint, if any; returns the iteration to continue from."""
    path = latest_checkpoint(run_dir)
    if path is None:
        return 0
    state = load_checkpoint(path, expected=identity)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    restore_rng_state(state["rng"])
    return int(state["iteration"])


# ----------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------
def load_trained(cfg: dict[str, Any], run_dir: Path, device: torch.device) -> UNet:
    path = Path(run_dir) / FINAL_WEIGHTS
    if not path.is_file():
        raise InputError(f"{path}: no trained weights; run `segbench train` for this run first")
    model = build_model(cfg)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"{path}: weights do not fit this run's U-Net ({type(exc).__name__}); "
                         "delete them and retrain") from None
    return model.to(device).eval()


def evaluate(cfg: dict[str, Any], run_dir: Path, data_root: Path, *,
             device: str | None = None) -> dict[str, Any]:
    """Metrics of the trained U-Net on the held-out data (overlap-tile, test-time dihedral averaging); also
    writes the report's records (segbench.records): ``predictions_val.npz`` and ``overlap_tile.json``."""
    dev = pick_device(device)
    model = load_trained(cfg, run_dir, dev)
    fmt, split = load_split(cfg, data_root)
    train_input, _ = training_tiles(model, int(cfg["input"]["tile"]))
    rotations = int(cfg.get("model", {}).get("test_time_rotations", 0))
    tile = evaluation_tile(model, train_input, cfg)
    predict = cell_probability_fn(model, tile, test_time_rotations=rotations, device=dev)
    write_tile_record(run_dir, TileGeometry.for_model(model, tile), cfg)
    probabilities = [predict(normalize_input(img.image, cfg)) for img in split.held_out]
    metrics = score_probability_maps(fmt, split, probabilities)
    next(iter(metrics.values()))["test_time_versions"] = rotations + 1
    if split.held_out:
        save_example_prediction(run_dir / CELL_EXAMPLE, split.held_out[0], probabilities[0])
    return metrics


def write_tile_record(run_dir: Path, geometry: TileGeometry, cfg: dict[str, Any]) -> None:
    """``overlap_tile.json``: the tile geometry evaluation used, for U-Net Fig. 2."""
    record = {"run": cfg["run"], "run_id": cfg.get("run_id", Path(run_dir).name),
              "input_tile": geometry.input_tile, "output_size": geometry.output_size,
              "stride": geometry.stride, "border": geometry.border}
    write_text_atomic(Path(run_dir) / OVERLAP_TILE, json.dumps(record, indent=1))


def save_example_prediction(path: Path, image: LabelledImage, cell_probability: np.ndarray) -> None:
    """One held-out image with its prediction (cell probability > 0.5) and ground truth, for the report's
    U-Net Figure 4 (arrays ``image``, ``prediction``, ``ground_truth``); written atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, image=image.image.astype(np.float32),
                            prediction=(cell_probability > 0.5).astype(np.uint8),
                            ground_truth=(image.instances > 0).astype(np.uint8))
