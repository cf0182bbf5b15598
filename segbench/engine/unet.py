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

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segbench.data.augment import AugmentParams, augment_tile
from segbench.data.biomedical import LabelledImage
from segbench.data.weight_map import PAPER_SIGMA_PX, PAPER_W0, cached_weight_map, training_target
from segbench.engine import contract
from segbench.engine.biomedical import (  # noqa: F401 - re-exported (earlier home of these names)
    INPUT_NORMALIZATIONS,
    load_split,
    normalize_input,
    save_held_out_predictions,
    score_probability_maps,
)
from segbench.engine.checkpoint import FINAL_MODEL, load_final, run_identity
from segbench.engine.distributed import Replica, resolve_device
from segbench.engine.overlap_tile import TileGeometry, cell_probability_fn
from segbench.engine.seeding import loader_options
from segbench.errors import InputError
from segbench.families import family_spec
from segbench.io import dumps, write_text_atomic
from segbench.models import build as build_model
from segbench.models.unet import (
    UNet,
    smallest_valid_input_at_least,
    valid_input_size,
    valid_output_size,
)
from segbench.models.unet_losses import (  # noqa: F401 - re-exported (earlier home of the loss registry)
    UNET_LOSSES,
    UnetLoss,
    register_unet_loss,
    unet_loss,
    weighted_cross_entropy,
)
from segbench.records import CELL_EXAMPLE, OVERLAP_TILE
from segbench.schedule import Schedule, effective_schedule

FINAL_WEIGHTS = FINAL_MODEL
EVAL_MIN_OUTPUT = 132  # evaluation tiles give at least this many valid output pixels per side (speed)


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
    return max(
        smallest_valid_input_at_least(train_input, model.depth),
        valid_input_size(EVAL_MIN_OUTPUT, model.depth),
    )


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


# ----------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------
class TrainingSet:
    """Training images with their targets and weight maps; ``sample`` draws one augmented tile."""

    def __init__(
        self,
        images: list[LabelledImage],
        weight_params: tuple[float, float] | None,
        cache_dir: Path,
        normalize: Callable[[np.ndarray], np.ndarray] = lambda image: image,
    ) -> None:
        if not images:
            raise InputError("U-Net training split is empty; the dataset needs more annotated images")
        self.images = [normalize(img.image) for img in images]
        self.targets = [training_target(img.instances) for img in images]
        if weight_params is None:
            self.weights = [np.ones(img.instances.shape, np.float32) for img in images]
        else:
            w0, sigma = weight_params
            self.weights = [
                cached_weight_map(img.label_file, img.index, img.instances, cache_dir, w0, sigma)
                for img in images
            ]

    def sample(
        self, rng: np.random.Generator, input_tile: int, output_tile: int, params: AugmentParams
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = int(rng.integers(len(self.images)))
        return augment_tile(
            rng,
            self.images[k],
            self.targets[k],
            self.weights[k],
            (input_tile, input_tile),
            (output_tile, output_tile),
            params,
        )


class IterationBatches(torch.utils.data.Dataset):
    """Item ``i`` is the augmented batch of training iteration ``i``, drawn from ``default_rng([seed, i])``.

    Indexing by iteration makes the batches independent of how many DataLoader workers draw them (and of
    resuming), so a GPU run can augment in worker processes while the model trains, with the same
    batches as a single-process CPU run.
    """

    def __init__(
        self,
        data: TrainingSet,
        seed: int,
        batch_size: int,
        input_tile: int,
        output_tile: int,
        params: AugmentParams,
    ) -> None:
        self.data, self.seed, self.batch_size = data, seed, batch_size
        self.input_tile, self.output_tile, self.params = input_tile, output_tile, params

    def __len__(self) -> int:  # iterations are drawn by index; the sampler decides which
        return 2**31 - 1

    def __getitem__(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, iteration])
        batch = [
            self.data.sample(rng, self.input_tile, self.output_tile, self.params)
            for _ in range(self.batch_size)
        ]
        images, targets, weights = (np.stack(parts) for parts in zip(*batch, strict=True))
        return torch.from_numpy(images), torch.from_numpy(targets), torch.from_numpy(weights)


def iteration_loader(
    batches: IterationBatches, start: int, iterations: int, schedule: dict[str, Any], device: torch.device
) -> torch.utils.data.DataLoader:
    """Batches ``start .. iterations - 1`` in order (workers, pinned memory, private generator:
    :func:`segbench.engine.seeding.loader_options`)."""
    options = loader_options(schedule, device, batches.seed)
    return torch.utils.data.DataLoader(
        batches,
        sampler=range(start, iterations),
        batch_size=None,
        prefetch_factor=2 if options["num_workers"] else None,
        **options,
    )


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


SCHEDULE_DEFAULTS = dict(
    family_spec("unet").schedule_defaults
)  # values of omitted schedule keys (segbench.schedule)


class UNetFamily(contract.FamilyBase):
    """The U-Net's part of the training contract (:class:`segbench.engine.contract.TrainingFamily`): one
    device, batches indexed by iteration (:class:`IterationBatches`), the ``model.loss`` of the registry."""

    distributed = family_spec("unet").distributed
    schedule_defaults = SCHEDULE_DEFAULTS
    channels_last_on_cpu = False

    def __init__(self, cfg: dict[str, Any], data_root: Path, run_dir: Path) -> None:
        self.cfg, self.data_root, self.run_dir = cfg, Path(data_root), Path(run_dir)
        self.loss_fn = unet_loss(cfg.get("model", {}))
        self.extra: dict[str, Any] = {}

    def schedule(self, *, replicas: int, gpus: int) -> Schedule:
        return effective_schedule(self.cfg, replicas=replicas, gpus=gpus)

    def build_model(self, schedule: Schedule) -> torch.nn.Module:
        self.model = build_model(self.cfg)
        return self.model

    def batches(
        self, schedule: Schedule, replica: Replica, device: torch.device, start: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        cfg = self.cfg
        _, split = load_split(cfg, self.data_root)
        model_cfg = cfg.get("model", {})
        data = TrainingSet(
            split.train,
            weight_map_params(model_cfg),
            weight_cache_dir(self.data_root, self.run_dir),
            normalize=lambda image: normalize_input(image, cfg),
        )
        input_tile, output_tile = training_tiles(self.model, int(cfg["input"]["tile"]))
        self.extra = {
            "input_tile": input_tile,
            "output_tile": output_tile,
            "train_images": len(split.train),
            "protocol": split.protocol,
        }
        batches = IterationBatches(
            data,
            int(cfg.get("seed", 0)),
            schedule.images_per_batch,
            input_tile,
            output_tile,
            augment_params(model_cfg),
        )
        return iter(iteration_loader(batches, start, schedule.iterations, cfg["schedule"], device))

    def loss(
        self,
        net: torch.nn.Module,
        batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        device: torch.device,
        amp: bool,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, targets, weights = (part.to(device, non_blocking=True) for part in batch)
        with torch.autocast(device.type, enabled=amp):
            loss = self.loss_fn(net(images[:, None]), targets.long(), weights)
        return loss, {"loss": loss.detach()}

    def summary(self) -> dict[str, Any]:
        return dict(self.extra)


def train(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None, gpus: int = 0
) -> dict[str, Any]:
    """Train (or resume) the U-Net of ``cfg`` in ``run_dir`` through :func:`segbench.engine.contract.train`:
    checkpoints, the log, ``model_final.pt``. One device (``gpus`` is accepted for the engine contract;
    batch 1 leaves nothing to split across GPUs)."""
    return contract.train(UNetFamily(cfg, data_root, run_dir), cfg, run_dir, device=device, gpus=gpus)


# ----------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------
def load_trained(cfg: dict[str, Any], run_dir: Path, device: torch.device) -> UNet:
    """The run's final U-Net on ``device`` (identity-checked: :func:`segbench.engine.checkpoint.load_final`)."""
    path = Path(run_dir) / FINAL_WEIGHTS
    weights = load_final(Path(run_dir), run_identity(cfg))["model"]
    model = build_model(cfg)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(
            f"{path}: weights do not fit this run's U-Net ({type(exc).__name__}); delete them and retrain"
        ) from None
    return model.to(device).eval()


def evaluate(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None
) -> dict[str, Any]:
    """Metrics of the trained U-Net on the held-out data (overlap-tile, test-time dihedral averaging); also
    writes the report's records (segbench.records): ``predictions_val.npz`` and ``overlap_tile.json``."""
    predict, geometry = _predictor(cfg, run_dir, device)
    fmt, split = load_split(cfg, data_root)
    write_tile_record(run_dir, geometry, cfg)
    probabilities = [predict(img.image) for img in split.held_out]
    metrics = score_probability_maps(fmt, split, probabilities)
    next(iter(metrics.values()))["test_time_versions"] = inference_versions(cfg)
    save_held_out_predictions(run_dir / CELL_EXAMPLE, split.held_out, probabilities)
    return metrics


def inference_versions(cfg: dict[str, Any]) -> int:
    """Dihedral versions averaged at inference: the identity plus ``model.test_time_rotations``."""
    return int(cfg.get("model", {}).get("test_time_rotations", 0)) + 1


def cell_probability_predictor(
    cfg: dict[str, Any], run_dir: Path, *, device: str | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """image in [0, 1] (H x W) -> P(cell) (H x W, float32) of the run's trained U-Net: input normalisation,
    overlap-tile and test-time versions exactly as :func:`evaluate` scores them (the ISBI submission uses
    it for the test stack)."""
    return _predictor(cfg, run_dir, device)[0]


def _predictor(
    cfg: dict[str, Any], run_dir: Path, device: str | None
) -> tuple[Callable[[np.ndarray], np.ndarray], TileGeometry]:
    dev = resolve_device(device)
    model = load_trained(cfg, run_dir, dev)
    train_input, _ = training_tiles(model, int(cfg["input"]["tile"]))
    tile = evaluation_tile(model, train_input, cfg)
    tiled = cell_probability_fn(model, tile, test_time_rotations=inference_versions(cfg) - 1, device=dev)

    def predict(image: np.ndarray) -> np.ndarray:
        return tiled(normalize_input(image, cfg))

    return predict, TileGeometry.for_model(model, tile)


def write_tile_record(run_dir: Path, geometry: TileGeometry, cfg: dict[str, Any]) -> None:
    """``overlap_tile.json``: the tile geometry evaluation used, for U-Net Fig. 2."""
    record = {
        "run": cfg["run"],
        "run_id": cfg.get("run_id", Path(run_dir).name),
        "input_tile": geometry.input_tile,
        "output_size": geometry.output_size,
        "stride": geometry.stride,
        "border": geometry.border,
    }
    write_text_atomic(Path(run_dir) / OVERLAP_TILE, dumps(record, indent=1))
