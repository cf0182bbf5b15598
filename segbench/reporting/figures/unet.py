"""U-Net figures on the scale's data: Fig. 2 (overlap-tile strategy) and Fig. 3 (the loss weight map).

Both draw on the project's own data code: the weight map of equation 2 (``segbench.data.weight_map``), and
the image of the scale's own data: at a scale whose dataset is real (real_cpu, paper: the ISBI 2012 stack,
the cell tracking challenge) a held-out image of it from the data root, read as the runs read it
(the held-out split of ``segbench.data.biomedical``), and the figure is skipped with a note where that data is
absent (a synthetic image would misrepresent a real scale); at the synthetic scales an example of the
EM and cell generators (``segbench.data.synthetic``). Fig. 2's tile geometry is the one a U-Net run's
evaluation used, read from its ``overlap_tile.json`` record (segbench.records), not computed here.
No figure here needs a trained model.
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
    plain,
    run_record,
    save_matplotlib,
)

EM_SIZE = 512
SEED = 0
CROP = 256  # Fig. 3 on a real image: its central CROP x CROP pixels (the weight map's detail stays visible)


@dataclass(frozen=True)
class ScaleImage:
    """A held-out image of the scale's real data: normalised intensities, instance labels, and what it is."""

    image: np.ndarray
    labels: np.ndarray
    text: str


def real_example(
    ctx: FigureContext, logical: tuple[str, ...], run_id: str | None = None
) -> ScaleImage | None:
    """The first held-out image of the scale's dataset for the first of the ``logical`` datasets it maps,
    where that dataset is real, split as the U-Net run ``run_id`` (``<run>-seed<k>``: its fold at a
    cross-validation scale; default: the first U-Net run on that dataset, seed 0) was. ``None`` where the
    scale's dataset is synthetic (or the scale maps none of them); :class:`MissingInput` where it is real
    and absent from the data root."""
    from segbench.data.biomedical import held_out_split, load_labelled_images
    from segbench.data.registry import dataset_entry, dataset_paths
    from segbench.errors import InputError
    from segbench.paths import data_root
    from segbench.registry import load_registry, resolve_run, runs_of_family, split_run_id

    reg = load_registry()
    mapped = reg["scales"].get(ctx.scale, {}).get("datasets", {})
    name = next((mapped[d] for d in logical if d in mapped), None)
    if name is None or dataset_entry(name).get("source") != "real":
        return None
    run, seed = split_run_id(run_id) if run_id else (None, None)
    if run is None or reg["runs"].get(run, {}).get("dataset") not in logical:
        wanted = next(d for d in logical if d in mapped)
        run = next(r for r in runs_of_family("unet", reg) if reg["runs"][r]["dataset"] == wanted)
    cfg = resolve_run(run, ctx.scale, seed or 0, reg)
    try:  # as the engine splits it (segbench.engine.biomedical.load_split), from the data layer alone
        fmt, groups = load_labelled_images(dataset_paths(name, ctx.data_root or data_root()))
    except InputError:
        raise MissingInput(
            f"scale {ctx.scale} runs on the real dataset {name!r}, which is not in the data root (place it "
            f"there, or point SEGBENCH_DATA / --data-root at it); the figure shows the scale's own data "
            "or nothing, so it is not drawn"
        ) from None
    fold = cfg.get("split", {}).get("fold")
    first = held_out_split(fmt, groups, fold=fold, folds=cfg.get("split", {}).get("folds", 5)).held_out[0]
    where = f"fold {fold + 1} of {cfg['split']['folds']}, " if fold is not None else ""
    return ScaleImage(first.image, first.instances, f"held-out {first.name} of {name} ({where}real data)")


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
        f"no U-Net run with {OVERLAP_TILE} under {ctx.runs_dir}; evaluate a U-Net "
        "run first (segbench evaluate writes it)"
    )


def render_fig2(ctx: FigureContext) -> list[str]:
    from matplotlib.patches import Rectangle

    geo = tile_geometry(ctx)
    real = real_example(ctx, ("isbi2012",), geo.run_id)
    image = em_slice() if real is None else real.image
    source = "a synthetic EM image" if real is None else real.text
    height, width = image.shape
    border = geo.border
    padded = np.pad(image, border + geo.stride, mode="reflect")  # as the engine: mirror the missing context
    origin = border + geo.stride  # where the original image starts in ``padded``
    fig = new_figure(7.5, 7.0)
    ax = fig.subplots()
    ax.imshow(padded, cmap="gray", interpolation="nearest")
    ax.add_patch(
        Rectangle(
            (origin - 0.5, origin - 0.5),
            width,
            height,
            fill=False,
            ec="white",
            lw=1.2,
            ls="--",
            label=f"image ({width}x{height}); outside: mirrored",
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
    ax.set_xlim(pad, origin + width + border + 20)
    ax.set_ylim(origin + height + border + 20, pad)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="lower right", fontsize=7, framealpha=0.85)
    ax.set_title(
        plain(
            f"Overlap-tile strategy (U-Net Fig. 2) of run {geo.run_id} on {source}:\n"
            f"the yellow output needs the blue input; the {border}-px context missing at the border is mirrored"
        ),
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

    # the paper's Fig. 3 is a DIC-HeLa frame; a scale without one (real_cpu: ISBI 2012 only) shows its EM data
    real = real_example(ctx, ("dic_hela", "phc_u373", "isbi2012"))
    if real is None:
        image, labels = cell_frame()
        source = "synthetic DIC"
    else:
        image, labels, source = real.image, real.labels, real.text
    target = training_target(labels)
    weights = unet_weight_map(labels)
    if real is not None and min(image.shape) > CROP:  # computed on the whole image, shown in its centre
        y0, x0 = (image.shape[0] - CROP) // 2, (image.shape[1] - CROP) // 2
        crop = (slice(y0, y0 + CROP), slice(x0, x0 + CROP))
        image, labels, target, weights = image[crop], labels[crop], target[crop], weights[crop]
        source += f", central {CROP} x {CROP} px"
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
    axes[0].set_title(plain(wrap_words(f"a  raw image ({source})", 40)), fontsize=9)
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


def wrap_words(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters, at spaces."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text
