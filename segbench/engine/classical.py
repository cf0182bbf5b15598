"""Engine of the classical baseline (smoothed-intensity threshold; contract: docs/architecture.md).

``train`` fits the threshold on the training images of the same split the U-Net uses and writes
``classical_model.json``; ``evaluate`` scores its P(cell)-like maps exactly like the U-Net's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbench.engine.unet import load_split, score_probability_maps
from segbench.errors import InputError
from segbench.io import read_json, write_json_atomic
from segbench.models.classical import SmoothedThreshold, build_classical

FITTED_MODEL = "classical_model.json"


def train(cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None,
          gpus: int = 0) -> dict[str, Any]:
    """Fit the threshold on the training split (``device``/``gpus`` unused: NumPy on the CPU)."""
    _, split = load_split(cfg, data_root)
    model = build_classical(cfg).fit([img.image for img in split.train],
                                     [img.instances > 0 for img in split.train])
    write_json_atomic(Path(run_dir) / FITTED_MODEL, model.state())
    return {"threshold": model.threshold, "polarity": model.polarity, "train_pixel_f": model.train_pixel_f,
            "train_images": len(split.train), "protocol": split.protocol}


def evaluate(cfg: dict[str, Any], run_dir: Path, data_root: Path, *,
             device: str | None = None) -> dict[str, Any]:
    """Metrics of the fitted threshold on the held-out images."""
    path = Path(run_dir) / FITTED_MODEL
    state = read_json(path, "fitted classical model (run `segbench train` first)")
    try:
        model = SmoothedThreshold.from_state(state)
    except TypeError:
        raise InputError(f"{path}: not a smoothed-threshold model; delete it and retrain") from None
    fmt, split = load_split(cfg, data_root)
    return score_probability_maps(fmt, split, [model.cell_probability(img.image) for img in split.held_out])
