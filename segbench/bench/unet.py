"""U-Net inference speed: ``tile`` x ``tile`` tiles (tiles/s) and one ``image_size`` square image by overlap-tile.

The paper (abstract, section 4): a 512 x 512 image in less than a second on a 2015 GPU. Defaults: the
paper's network (base 64 channels, unpadded), 572 -> 388 tiles, a 512 x 512 image with one test-time
version (``--test-time-versions 8`` is the paper's averaging). Tile times are the median of ``--tiles``
forward passes after one warm-up pass; image times the median of ``--images`` overlap-tile predictions
(one tile per forward) after one warm-up prediction. Peak memory is that of one tile's forward pass
(:func:`segbench.bench.timing.peak_memory_mb`), measured before the timings.
"""

from __future__ import annotations

import math
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
    return f"U-Net: tiles/s on {tile} x {tile} input tiles and ms per {size} x {size} image by overlap-tile"


OPTIONS: dict[str, Any] = {
    "base_channels": 64,
    "tile": 572,
    "tiles": 2,
    "image_size": 512,
    "images": 1,
    "test_time_versions": 1,
    "device": None,
    "threads": 1,
}
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


def run(options: dict[str, Any]) -> dict[str, Any]:
    from segbench.engine.overlap_tile import TileGeometry
    from segbench.models.unet import UNet

    device = resolve_device(options["device"])
    for key in ("base_channels", "tile", "tiles", "image_size", "images"):
        if int(options[key]) < 1:
            raise InputError(f"--{key.replace('_', '-')} {options[key]}: must be >= 1")
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
    return {
        "rows": [row],
        "columns": COLUMNS,
        "settings": {**options, "device": str(device), "memory_method": memory_method(device)},
        "notes": notes,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
