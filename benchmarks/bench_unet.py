"""U-Net inference speed: 572 x 572 tiles (tiles/s) and one 512 x 512 image by overlap-tile (ms/image).

The paper (abstract, section 4): a 512 x 512 image in less than a second on a 2015 GPU.

    .venv/bin/python benchmarks/bench_unet.py                    # CPU, base 64 (the paper's network)
    .venv/bin/python benchmarks/bench_unet.py --device cuda --tiles 20 --test-time-versions 8
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from segbench.engine.overlap_tile import TileGeometry, dihedral_versions, predict_tiled
from segbench.models.unet import UNet


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_tiles(model: UNet, device: torch.device, tile: int, repeats: int) -> float:
    """Seconds per forward pass of one ``tile`` x ``tile`` input (after one warm-up pass)."""
    x = torch.randn(1, 1, tile, tile, device=device)
    with torch.inference_mode():
        model(x)
        synchronise(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        synchronise(device)
    return (time.perf_counter() - start) / repeats


def time_image(model: UNet, device: torch.device, tile: int, size: int, versions: int, repeats: int) -> float:
    """Seconds per ``size`` x ``size`` image by overlap-tile with ``versions`` dihedral versions."""
    image = np.random.default_rng(0).random((size, size), dtype=np.float32)
    transforms = dihedral_versions(versions - 1)
    predict_tiled(model, image, tile, transforms=transforms[:1], device=device)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        predict_tiled(model, image, tile, transforms=transforms, device=device, batch_tiles=1)
    synchronise(device)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--base-channels", type=int, default=64)
    parser.add_argument("--tile", type=int, default=572)
    parser.add_argument("--tiles", type=int, default=2, help="timed 572 tiles")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--images", type=int, default=1, help="timed overlap-tile images")
    parser.add_argument("--test-time-versions", type=int, default=1, help="1 (no averaging) .. 8 (paper)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = UNet(base_channels=args.base_channels).to(device).eval()
    geometry = TileGeometry.for_model(model, args.tile)
    params = sum(p.numel() for p in model.parameters())
    print(f"U-Net base {args.base_channels}: {params:,} parameters; device {device}, "
          f"{torch.get_num_threads()} CPU threads")
    per_tile = time_tiles(model, device, args.tile, args.tiles)
    print(f"{args.tile} -> {geometry.output_size} tile: {per_tile * 1e3:.0f} ms/tile, "
          f"{1 / per_tile:.2f} tiles/s ({args.tiles} timed)")
    tiles_per_image = math.ceil(args.image_size / geometry.stride) ** 2
    per_image = time_image(model, device, args.tile, args.image_size, args.test_time_versions, args.images)
    print(f"{args.image_size} x {args.image_size} image by overlap-tile ({tiles_per_image} tiles of stride "
          f"{geometry.stride}, {args.test_time_versions} test-time version(s)): "
          f"{per_image * 1e3:.0f} ms/image")


if __name__ == "__main__":
    main()
