"""U-Net figures on synthetic data: Fig. 2 (overlap-tile strategy) and Fig. 3 (the loss weight map).

Both draw on the project's own data code: the EM and cell generators (``segbench.data.synthetic``) and the
weight map of equation 2 (``segbench.data.weight_map``). Fig. 2's tile geometry is the one a U-Net run's
evaluation used, read from its ``overlap_tile.json`` record (segbench.records), not computed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segbench.io import read_json
from segbench.records import OVERLAP_TILE
from segbench.reporting.figures.base import (
    FigureContext,
    MissingInput,
    new_figure,
    run_record,
    save_matplotlib,
)

EM_SIZE = 512
SEED = 0


def em_slice(size: int = EM_SIZE) -> np.ndarray:
    """One synthetic serial-section EM image (ISBI 2012 look), ``size x size`` uint8."""
    from segbench.data.synthetic import em

    return em.example_slice(size, SEED)


@dataclass(frozen=True)
class TileRecord:
    """A run's ``overlap_tile.json``: ``input_tile`` -> ``output_size`` valid pixels, ``stride`` kept per
    tile, ``border`` of context on each side."""

    run_id: str
    input_tile: int
    output_size: int
    stride: int
    border: int


def tile_geometry(ctx: FigureContext) -> TileRecord:
    """The overlap-tile geometry of the first evaluated run of the registry's ``figures.unet_fig2.runs``,
    else of any evaluated U-Net run."""
    from segbench.registry import figure_runs, runs_of_family

    candidates = [run for run, _ in figure_runs("unet_fig2")] + runs_of_family("unet")
    for run in dict.fromkeys(candidates):
        path = run_record(ctx, run, OVERLAP_TILE)
        if path is not None:
            r = read_json(path, "overlap-tile record")
            return TileRecord(
                path.parent.name,
                int(r["input_tile"]),
                int(r["output_size"]),
                int(r["stride"]),
                int(r["border"]),
            )
    raise MissingInput(
        f"no U-Net run with {OVERLAP_TILE} under {ctx.scale_dir / 'runs'}; evaluate a U-Net "
        "run first (segbench evaluate writes it)"
    )


def render_fig2(ctx: FigureContext) -> list[str]:
    from matplotlib.patches import Rectangle

    geo = tile_geometry(ctx)
    image = em_slice()
    border = geo.border
    padded = np.pad(image, border + geo.stride, mode="reflect")  # as the engine: mirror the missing context
    origin = border + geo.stride  # where the original image starts in ``padded``
    fig = new_figure(7.5, 7.0)
    ax = fig.subplots()
    ax.imshow(padded, cmap="gray", interpolation="nearest")
    ax.add_patch(
        Rectangle(
            (origin - 0.5, origin - 0.5),
            EM_SIZE,
            EM_SIZE,
            fill=False,
            ec="white",
            lw=1.2,
            ls="--",
            label=f"image ({EM_SIZE}x{EM_SIZE}); outside: mirrored",
        )
    )
    y0 = x0 = origin - border  # the first tile: its output starts at the image corner
    ax.add_patch(
        Rectangle(
            (x0 - 0.5, y0 - 0.5),
            geo.input_tile,
            geo.input_tile,
            fill=False,
            ec="#1f77ff",
            lw=2.5,
            label=f"input tile {geo.input_tile}x{geo.input_tile}",
        )
    )
    ax.add_patch(
        Rectangle(
            (origin - 0.5, origin - 0.5),
            geo.output_size,
            geo.output_size,
            fill=True,
            fc=(1.0, 0.85, 0.0, 0.25),
            ec="#ffd000",
            lw=2.5,
            label=f"its valid output {geo.output_size}x{geo.output_size} (kept: {geo.stride})",
        )
    )
    ax.add_patch(
        Rectangle(
            (x0 + geo.stride - 0.5, y0 - 0.5),
            geo.input_tile,
            geo.input_tile,
            fill=False,
            ec="#1f77ff",
            lw=1.5,
            ls=":",
            label="next tile (offset by the kept output)",
        )
    )
    pad = origin - border - 20
    ax.set_xlim(pad, origin + EM_SIZE + border + 20)
    ax.set_ylim(origin + EM_SIZE + border + 20, pad)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="lower right", fontsize=7, framealpha=0.85)
    ax.set_title(
        f"Overlap-tile strategy (U-Net Fig. 2) of run {geo.run_id} on a synthetic EM image: the yellow\n"
        f"output needs the blue input; the {border}-px context missing at the border is mirrored",
        fontsize=9,
    )
    return save_matplotlib(fig, ctx.out_dir, "unet_fig2")


def cell_frame() -> tuple[np.ndarray, np.ndarray]:
    """A synthetic DIC-HeLa-like frame and its instance labels (touching, elongated cells)."""
    from segbench.data.synthetic import cells

    return cells.example_frame(SEED, modality="dic", cells_per_frame=[10, 14])


def render_fig3(ctx: FigureContext) -> list[str]:
    from matplotlib.colors import ListedColormap

    from segbench.data.weight_map import training_target, unet_weight_map

    image, labels = cell_frame()
    target = training_target(labels)
    weights = unet_weight_map(labels)
    rng = np.random.default_rng(SEED)
    colours = ListedColormap(
        np.vstack(
            [
                [0, 0, 0, 0],
                np.c_[rng.uniform(0.2, 1.0, (int(labels.max()), 3)), np.full(int(labels.max()), 0.45)],
            ]
        )
    )
    fig = new_figure(13.0, 3.7)
    axes = fig.subplots(1, 4)
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("a  raw image (synthetic DIC)", fontsize=9)
    axes[1].imshow(image, cmap="gray")
    axes[1].imshow(labels, cmap=colours, interpolation="nearest", vmin=0, vmax=int(labels.max()))
    axes[1].set_title("b  ground-truth instances", fontsize=9)
    axes[2].imshow(target, cmap="gray", interpolation="nearest")
    axes[2].set_title("c  training mask (touching cells separated)", fontsize=9)
    shown = axes[3].imshow(weights, cmap="jet", interpolation="nearest")
    axes[3].set_title("d  loss weight map (eq. 2, w0=10, sigma=5)", fontsize=9)
    fig.colorbar(shown, ax=axes[3], fraction=0.046).set_label("loss weight w(x) (unitless)", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("U-Net Fig. 3: weight map from segbench.data.weight_map", fontsize=11)
    return save_matplotlib(fig, ctx.out_dir, "unet_fig3")
