"""U-Net inference speed: ``tile`` x ``tile`` tiles (tiles/s) and one ``image_size`` square image by overlap-tile.

The paper (abstract, section 4): a 512 x 512 image in less than a second on a 2015 GPU. Defaults: the
paper's network (base 64 channels, unpadded), 572 -> 388 tiles, a 512 x 512 image with one test-time
version (``--test-time-versions 8`` is the paper's averaging). Tile times are the median of ``--tiles``
forward passes after one warm-up pass; image times the median of ``--images`` overlap-tile predictions
(one tile per forward) after one warm-up prediction. Peak memory is that of one tile's forward pass
(:func:`segbench.bench.timing.peak_memory_mb`), measured before the timings.

Training (``--train-steps N``, default 5; 0 skips it): the time of one training step on one ``tile`` x
``tile`` input as the U-Net engine takes it (:mod:`segbench.engine.unet`, :func:`segbench.engine.contract.train`):
the paper run's (``unet_isbi``) loss, the weighted cross entropy of equation 1 with the weight map of
equation 2 (w0 = 10, sigma = 5 px) of a synthetic instance label (random touching disks on the output
tile; the map is computed once, as the engine's cache does), computed by the engine's own
``UNetFamily.loss``; then backward and the SGD step with momentum (:func:`segbench.engine.contract.sgd_step`,
the run's lr 0.01 and momentum 0.99), the network in train mode (dropout on). Three variants, each on its
own copy of the same initial weights, timed interleaved (:func:`segbench.bench.timing.time_interleaved`, one
warm-up round, then ``N`` rounds; medians), under training's determinism settings
(:func:`segbench.determinism.training_settings`, recorded in ``settings.determinism``):

- ``float32``: the engine's default;
- ``amp``: what the engine runs for schedule ``amp: true``: ``torch.autocast(device.type)``, which is
  bfloat16 on the CPU (no gradient scaler) and float16 on CUDA, there with the engine's
  ``torch.amp.GradScaler``. It is always measured beside float32 (its own columns), so the suite takes no
  ``--amp`` option and the result file's device tag stays ``cpu`` / ``cuda-<gpu>``;
- ``channels_last``: float32 with the model in the channels-last memory format (what the engine does for a
  family with ``channels_last_on_cpu``; the U-Net's is off).

The speed-ups are float32's median over the variant's (> 1: the variant is faster). Sanity figure: from the
same weights and input, with dropout off so that every variant runs the same network, the first two steps'
losses of each variant (the second is the loss after one SGD step) against float32's; the largest absolute
difference is ``train_max_abs_loss_difference_amp`` (and ``_channels_last``), printed in the notes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from segbench.bench.timing import (
    memory_method,
    peak_memory_mb,
    resolve_device,
    sync,
    time_interleaved,
    timing_entry,
)
from segbench.errors import InputError

TITLE = "U-Net: tiles/s on 572 x 572 input tiles and ms per 512 x 512 image by overlap-tile"


def title_for(settings: dict[str, Any]) -> str:
    """The title for the settings a result was measured with (the tile and image sizes are options)."""
    tile, size = settings.get("tile", OPTIONS["tile"]), settings.get("image_size", OPTIONS["image_size"])
    title = f"U-Net: tiles/s on {tile} x {tile} input tiles and ms per {size} x {size} image by overlap-tile"
    # a result written before the suite timed training has no train_steps: no training in its title
    return title + (", ms per training step" if settings.get("train_steps", 0) else "")


OPTIONS: dict[str, Any] = {
    "base_channels": 64,
    "tile": 572,
    "tiles": 2,
    "image_size": 512,
    "images": 1,
    "test_time_versions": 1,
    "device": None,
    "threads": 1,
    "train_steps": 5,
}
TRAIN_RUN = "unet_isbi"  # the registry run whose loss, weight map and schedule (lr, momentum) a step uses
TRAIN_VARIANTS = ("float32", "amp", "channels_last")
COLUMNS = [
    {"key": "base_channels", "label": "base channels"},
    {"key": "params", "label": "parameters"},
    {"key": "tile_geometry", "label": "tile"},
    {"key": "ms_per_tile", "label": "ms/tile", "format": ".0f"},
    {"key": "tiles_per_s", "label": "tiles/s", "format": ".3g"},
    {"key": "image", "label": "image (overlap-tile)"},
    {"key": "ms_per_image", "label": "ms/image", "format": ".0f"},
    {"key": "tile_peak_mb", "label": "tile peak MiB", "format": ".0f"},
]


def train_columns(amp_dtype: str) -> list[dict[str, Any]]:
    """The training step's columns (present where ``--train-steps`` > 0), the autocast dtype in the labels."""
    short = {"bfloat16": "bf16", "float16": "fp16"}.get(amp_dtype, amp_dtype)
    return [
        {"key": "train_ms_per_step", "label": "train ms/step fp32", "format": ".0f"},
        {"key": "train_ms_per_step_amp", "label": f"train ms/step {short} autocast", "format": ".0f"},
        {"key": "train_ms_per_step_channels_last", "label": "train ms/step channels_last", "format": ".0f"},
        {"key": "train_speedup_amp", "label": f"{short} speed-up", "format": ".2f"},
        {"key": "train_speedup_channels_last", "label": "channels_last speed-up", "format": ".2f"},
    ]


def tile_pass(model: torch.nn.Module, device: torch.device, tile: int) -> Any:
    """One forward pass of a ``tile`` x ``tile`` input, as a callable."""
    x = torch.randn(1, 1, tile, tile, device=device)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    return forward


def image_pass(model: torch.nn.Module, device: torch.device, tile: int, size: int, versions: int) -> Any:
    """One ``size`` x ``size`` image by overlap-tile with ``versions`` dihedral versions, as a callable."""
    from segbench.engine.overlap_tile import dihedral_versions, predict_tiled

    image = np.random.default_rng(0).random((size, size), dtype=np.float32)
    transforms = dihedral_versions(versions - 1)

    def predict() -> None:
        predict_tiled(model, image, tile, transforms=transforms, device=device, batch_tiles=1)
        sync(device)

    predict_tiled(model, image, tile, transforms=transforms[:1], device=device)  # warm-up
    return predict


def synthetic_instances(size: int, seed: int = 0) -> np.ndarray:
    """A ``size`` x ``size`` instance label of random disks, some touching or overlapping (0 = background)."""
    rng = np.random.default_rng(seed)
    radius = max(2.0, size / 12)
    count = max(2, round((size / (3 * radius)) ** 2))
    yy, xx = np.mgrid[:size, :size]
    instances = np.zeros((size, size), np.int32)
    for index, (y, x) in enumerate(rng.uniform(0, size, (count, 2)), start=1):
        instances[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = index
    return instances


def training_batch(
    cfg: dict[str, Any], tile: int, output: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image, target, weights) of one step, as the engine's loader gives them: a standardised ``tile`` x
    ``tile`` image, the binary target and the run's weight map of a synthetic ``output`` x ``output`` label."""
    from segbench.data.weight_map import unet_weight_map
    from segbench.engine.unet import training_target, weight_map_params

    instances = synthetic_instances(output)
    params = weight_map_params(cfg.get("model", {}))
    weights = np.ones(instances.shape, np.float32) if params is None else unet_weight_map(instances, *params)
    image = torch.randn(1, tile, tile, generator=torch.Generator().manual_seed(0))
    target = torch.from_numpy(training_target(instances))[None]
    return image.to(device), target.to(device), torch.from_numpy(weights)[None].to(device)


def train_step(
    family: Any,
    model: torch.nn.Module,
    batch: tuple[torch.Tensor, ...],
    device: torch.device,
    amp: bool,
    lr: float,
    momentum: float,
) -> Callable[[], torch.Tensor]:
    """One engine training step of ``model`` on ``batch`` (the family's loss, then
    :func:`segbench.engine.contract.sgd_step` with its own SGD and gradient scaler), as a callable that
    returns the detached loss."""
    from segbench.engine.contract import sgd_step

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=0.0)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")  # as the engine

    def step() -> torch.Tensor:
        loss, _ = family.loss(model, batch, device, amp)
        sgd_step(loss, optimizer, scaler)
        return loss.detach()

    return step


def loss_differences(
    steps: dict[str, Callable[[], torch.Tensor]], models: dict[str, torch.nn.Module]
) -> dict:
    """The first two steps' losses of every variant (dropout off) and each one's largest absolute
    difference from float32's; the models are left in train mode, one step further."""
    losses = {}
    for name, step in steps.items():
        for module in models[name].modules():
            if isinstance(module, torch.nn.Dropout):
                module.eval()
        losses[name] = [float(step()), float(step())]
        models[name].train()
    reference = losses["float32"]
    return {
        "losses": losses,
        "max_abs": {
            name: max(abs(a - b) for a, b in zip(values, reference, strict=True))
            for name, values in losses.items()
            if name != "float32"
        },
    }


def time_training(
    model: torch.nn.Module, device: torch.device, tile: int, output: int, steps: int
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str], dict[str, Any]]:
    """(row fields, timing entries, notes, determinism flags) of the training step's three variants."""
    from segbench import determinism
    from segbench.engine.unet import UNetFamily, effective_schedule
    from segbench.registry import resolve_run

    cfg = resolve_run(TRAIN_RUN, "paper")
    schedule = effective_schedule(cfg, replicas=1, gpus=0)
    family = UNetFamily(cfg, data_root=".", run_dir=".")  # the loss only: nothing is read or written
    batch = training_batch(cfg, tile, output, device)
    amp_dtype = str(torch.get_autocast_dtype(device.type)).removeprefix("torch.")
    amp_label = f"{amp_dtype} autocast" + (" + GradScaler" if device.type == "cuda" else "")
    labels = {"float32": "float32", "amp": amp_label, "channels_last": "float32 channels_last"}
    models = {name: copy.deepcopy(model).train() for name in TRAIN_VARIANTS}
    models["channels_last"] = models["channels_last"].to(memory_format=torch.channels_last)
    lr, momentum = float(schedule.base_lr), float(schedule.momentum)
    with determinism.training_settings() as flags:
        fns = {
            name: train_step(family, m, batch, device, name == "amp", lr, momentum)
            for name, m in models.items()
        }
        check = loss_differences(fns, models)
        timed = time_interleaved(fns, warmup=1, iters=steps, device=device)
    fp32 = timed["float32"]["median_ms"]
    row = {
        "train_steps": steps,
        "train_loss": f"{TRAIN_RUN}: {cfg.get('model', {}).get('loss', 'weighted_ce')} (equation 2 weight map)",
        "train_lr": lr,
        "train_momentum": momentum,
        "train_amp_dtype": amp_dtype,
        "train_ms_per_step": fp32,
        "train_ms_per_step_amp": timed["amp"]["median_ms"],
        "train_ms_per_step_channels_last": timed["channels_last"]["median_ms"],
        "train_speedup_amp": fp32 / timed["amp"]["median_ms"],
        "train_speedup_channels_last": fp32 / timed["channels_last"]["median_ms"],
        "train_losses_first_two_steps": check["losses"],
        "train_max_abs_loss_difference_amp": check["max_abs"]["amp"],
        "train_max_abs_loss_difference_channels_last": check["max_abs"]["channels_last"],
    }
    timings = [
        timing_entry(f"train step {tile}, {labels[name]} (ms/step)", "segbench", timed[name]["samples_ms"])
        for name in TRAIN_VARIANTS
    ]
    fp32_losses = ", ".join(f"{v:.6g}" for v in check["losses"]["float32"])
    notes = [
        f"training step: medians of {steps} interleaved step(s) per variant after one warm-up round; forward, "
        f"the {TRAIN_RUN} run's weighted cross entropy (synthetic label), backward, SGD lr {lr:g} momentum "
        f"{momentum:g}; {amp_label} is what the engine runs for schedule amp: true on {device.type}; speed-up = "
        "float32 ms / variant ms.",
        f"loss check (same weights and input, dropout off; steps 1 and 2, the second after one SGD step): "
        f"float32 {fp32_losses}; max |difference| {amp_dtype} autocast "
        f"{check['max_abs']['amp']:.3g}, channels_last {check['max_abs']['channels_last']:.3g}.",
    ]
    return row, timings, notes, flags


def run(options: dict[str, Any]) -> dict[str, Any]:
    from segbench.engine.overlap_tile import TileGeometry
    from segbench.models.unet import UNet

    device = resolve_device(options["device"])
    for key in ("base_channels", "tile", "tiles", "image_size", "images"):
        if int(options[key]) < 1:
            raise InputError(f"--{key.replace('_', '-')} {options[key]}: must be >= 1")
    train_steps = int(options["train_steps"])
    if train_steps < 0:
        raise InputError(f"--train-steps {train_steps}: must be >= 0 (0 skips the training step)")
    versions = int(options["test_time_versions"])
    if not 1 <= versions <= 8:
        raise InputError(f"--test-time-versions {versions}: expected 1 (no averaging) .. 8 (the paper's)")
    torch.manual_seed(0)
    model = UNet(base_channels=int(options["base_channels"])).to(device).eval()
    tile = int(options["tile"])
    try:
        geometry = TileGeometry.for_model(model, tile)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"--tile {tile}: not a valid input size of this U-Net ({exc})") from None
    peak, peak_note = peak_memory_mb(tile_pass(model, device, tile), device)
    tiles = time_interleaved(
        {"tile": tile_pass(model, device, tile)}, warmup=1, iters=int(options["tiles"]), device=device
    )["tile"]
    size = int(options["image_size"])
    images = time_interleaved(
        {"image": image_pass(model, device, tile, size, versions)},
        warmup=0,
        iters=int(options["images"]),
        device=device,
    )["image"]
    per_tile, per_image = tiles["median_ms"], images["median_ms"]
    tiles_per_image = math.ceil(size / geometry.stride) ** 2
    row = {
        "base_channels": int(options["base_channels"]),
        "params": sum(p.numel() for p in model.parameters()),
        "tile": tile,
        "tile_output": geometry.output_size,
        "tile_geometry": f"{tile} -> {geometry.output_size}",
        "ms_per_tile": per_tile,
        "tiles_per_s": 1e3 / per_tile,
        "image_size": size,
        "tiles_per_image": tiles_per_image,
        "stride": geometry.stride,
        "test_time_versions": versions,
        "image": f"{size} x {size}: {tiles_per_image} tiles of stride {geometry.stride}, {versions} version(s)",
        "ms_per_image": per_image,
        "tile_peak_mb": peak,
        "timings": [
            timing_entry(f"tile {tile} (ms/tile)", "segbench", tiles["samples_ms"]),
            timing_entry(f"image {size} (ms/image)", "segbench", images["samples_ms"]),
        ],
    }
    notes = [
        f"medians of {options['tiles']} tile pass(es) and {options['images']} image(s); "
        f"peak memory: {memory_method(device)}" + (f" ({peak_note})" if peak_note else "") + "."
    ]
    columns = list(COLUMNS)
    settings = {**options, "device": str(device), "memory_method": memory_method(device)}
    if train_steps:
        fields, timings, train_notes, flags = time_training(
            model, device, tile, geometry.output_size, train_steps
        )
        row.update(fields)
        row["timings"] += timings
        columns += train_columns(fields["train_amp_dtype"])
        notes += train_notes
        settings["determinism"] = flags
    else:
        notes.append("training step not timed (--train-steps 0).")
    return {
        "rows": [row],
        "columns": columns,
        "settings": settings,
        "notes": notes,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
