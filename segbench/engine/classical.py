"""Engine of the classical baseline (smoothed-intensity threshold; contract: docs/architecture.md).

``train`` fits the threshold on the training images of the same split the U-Net uses and writes
``classical_model.json`` (with the run identity of :func:`segbench.engine.checkpoint.run_identity`);
``evaluate`` checks that identity and scores its P(cell)-like maps exactly like the U-Net's
(:mod:`segbench.engine.biomedical`). Nothing is trained by gradient, so the training loop of
:mod:`segbench.engine.contract` does not apply; the identity and final-model rules of
:mod:`segbench.engine.checkpoint` do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbench.engine.biomedical import load_split, score_probability_maps
from segbench.engine.checkpoint import check_identity, check_legacy_final, run_identity
from segbench.errors import InputError
from segbench.io import read_json, write_json_atomic
from segbench.models.classical import SmoothedThreshold, build_classical

FITTED_MODEL = "classical_model.json"


def train(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None, gpus: int = 0
) -> dict[str, Any]:
    """Fit the threshold on the training split (``device``/``gpus`` unused: NumPy on the CPU)."""
    _, split = load_split(cfg, data_root)
    model = build_classical(cfg).fit(
        [img.image for img in split.train], [img.instances > 0 for img in split.train]
    )
    summary = {
        "threshold": model.threshold,
        "polarity": model.polarity,
        "train_pixel_f": model.train_pixel_f,
        "train_images": len(split.train),
        "protocol": split.protocol,
    }
    write_json_atomic(
        Path(run_dir) / FITTED_MODEL, {**run_identity(cfg), "model": model.state(), "summary": summary}
    )
    return summary


def load_fitted(cfg: dict[str, Any], run_dir: Path) -> SmoothedThreshold:
    """The run's fitted threshold, identity-checked (a file of another run or config is refused)."""
    path = Path(run_dir) / FITTED_MODEL
    state = read_json(path, "fitted classical model (run `segbench train` first)")
    identity = run_identity(cfg)
    if "config_hash" in state:
        check_identity(state, identity, path)
        state = state.get("model")
    else:  # written before the file carried an identity
        check_legacy_final(run_dir, identity, path)
    try:
        return SmoothedThreshold.from_state(state)
    except TypeError:
        raise InputError(f"{path}: not a smoothed-threshold model; delete it and retrain") from None


def evaluate(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None
) -> dict[str, Any]:
    """Metrics of the fitted threshold on the held-out images."""
    model = load_fitted(cfg, run_dir)
    fmt, split = load_split(cfg, data_root)
    return score_probability_maps(fmt, split, [model.cell_probability(img.image) for img in split.held_out])
