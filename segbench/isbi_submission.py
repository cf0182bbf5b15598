"""ISBI 2012 challenge submissions: the test stack predicted by a trained run, in the organisers' format.

The challenge's test labels are secret; official test-set numbers (U-Net Table 1's) come only from the
challenge server (http://brainiac2.mit.edu/isbi_challenge/). A submission is a float32 TIFF stack of the
30 test slices with values in [0, 1], **1 = cell (non-membrane), 0 = membrane** (the labels' polarity,
255 -> 1), which is what our P(cell) maps are. The prediction is the evaluation's own
(``cell_probability_predictor`` of the U-Net and sliding-window engines: input normalisation, overlap-tile,
test-time dihedral versions), clipped to [0, 1] and cast to float32 as the evaluation scores it.

Files, beside the run (``results/<scale>/runs/<run>-seed<k>/``): ``isbi_submission.tif`` (gitignored: 31 MB
at 30 x 512 x 512) and ``isbi_submission.json`` (run, config hash, commit, weights and input sha256, output
sha256). ``isbi_official.json`` holds the scores the organisers return (``segbench isbi record-scores``).
At a synthetic scale the test stack is a stand-in drawn by the ``em`` generator from a separate random
stream (:func:`segbench.data.synthetic.em.stand_in_test_volume`). docs/isbi_submission.md says how to submit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segbench.errors import InputError

SUBMISSION = "isbi_submission.tif"
SUBMISSION_RECORD = "isbi_submission.json"
HELD_OUT_SUBMISSION = "isbi_submission_heldout.tif"
OFFICIAL = "isbi_official.json"
TEST_VOLUME = "test-volume.tif"  # the organisers' file name, placed in the real dataset's directory
STAND_IN_SEED = 0
FAMILIES = ("unet", "sliding_window")
Predictor = Callable[[np.ndarray], np.ndarray]  # image in [0, 1] (H x W) -> P(cell) (H x W)
CONVENTION = "float32 in [0, 1], 1 = cell (non-membrane), 0 = membrane"
#: The organisers' numbers ``record-scores`` accepts: the three of U-Net Table 1 (errors) and the two
#: the server ranks by today (scores).
OFFICIAL_METRICS = {
    "rand_error": "foreground-restricted Rand error (deprecated leaderboard)",
    "warping_error": "minimum splits-and-mergers warping error (deprecated leaderboard)",
    "pixel_error": "pixel error (deprecated leaderboard)",
    "v_rand": "V_rand (thinned), the current ranking score",
    "v_info": "V_info (thinned)",
}


def check_run(cfg: dict[str, Any]) -> None:
    """Only the U-Net and sliding-window families on an ISBI 2012 dataset predict a submission."""
    fmt = cfg.get("dataset", {}).get("format")
    if cfg.get("family") not in FAMILIES or fmt != "isbi2012":
        raise InputError(
            f"run {cfg['run']!r} (family {cfg.get('family')!r}, dataset format {fmt!r}): an ISBI 2012 "
            f"submission needs a {' or '.join(FAMILIES)} run on an isbi2012 dataset, e.g. --run unet_isbi"
        )


def pixel_sha256(array: np.ndarray) -> str:
    """sha256 of the raw pixel bytes (C order): independent of the TIFF writer, unlike the file's."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def load_test_stack(cfg: dict[str, Any], data_root: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The uint8 test stack (S x H x W) for the run's dataset and what it is: the organisers'
    ``test-volume.tif`` in a real dataset's directory, or the ``em`` generator's stand-in."""
    from segbench.data.registry import dataset_dir

    dataset = cfg["dataset"]
    if dataset.get("source") == "synthetic":
        from segbench.data.synthetic.em import stand_in_test_volume

        if dataset.get("generator") != "em":
            raise InputError(
                f"dataset {dataset['name']!r}: no test-stack stand-in for generator {dataset.get('generator')!r}"
            )
        volume = stand_in_test_volume(dataset.get("params", {}), STAND_IN_SEED)
        return volume, {
            "kind": "synthetic stand-in for the test stack",
            "generator": f"em, params of {dataset['name']}, seed {STAND_IN_SEED}, random stream 'test'",
            "pixel_sha256": pixel_sha256(volume),
            "shape": list(volume.shape),
        }
    from segbench.data.biomedical import read_tiff
    from segbench.io import sha256_file

    path = dataset_dir(dataset["name"], data_root) / TEST_VOLUME
    if not path.is_file():
        raise InputError(
            f"{path}: the challenge's test stack is not there; download test-volume.tif from "
            "http://brainiac2.mit.edu/isbi_challenge/ (registration) and place it beside train-volume.tif"
        )
    volume = read_tiff(path, "ISBI test volume")
    volume = volume[None] if volume.ndim == 2 else volume
    if volume.ndim != 3 or volume.dtype != np.uint8:
        raise InputError(
            f"{path}: expected a S x H x W uint8 stack as the organisers ship it, got {volume.dtype} "
            f"{volume.shape}; use the challenge's test-volume.tif"
        )
    return volume, {
        "kind": "ISBI 2012 test stack",
        "path": str(path),
        "file_sha256": sha256_file(path),
        "pixel_sha256": pixel_sha256(volume),
        "shape": list(volume.shape),
    }


def predictor(cfg: dict[str, Any], run_dir: Path, device: str | None = None) -> Predictor:
    """The evaluation's image-in-[0, 1] -> P(cell) function of the trained run (identity-checked weights)."""
    from segbench.engine import engine_for

    check_run(cfg)
    weights = Path(run_dir) / "model_final.pt"
    if (Path(run_dir) / "train_done.json").is_file() and not weights.is_file():
        raise InputError(
            f"{weights}: the run's records are here but not its weights (results/*/runs/**/*.pt is not "
            "committed); retrain it into a scratch --results as docs/isbi_submission.md says, then submit from there"
        )
    return engine_for(cfg["family"]).cell_probability_predictor(cfg, run_dir, device=device)


def predict_stack(predict: Predictor, images: list[np.ndarray]) -> np.ndarray:
    """P(cell) of each [0, 1] image, stacked, clipped to [0, 1] and cast to float32 as the evaluation does
    (:func:`segbench.engine.biomedical.score_probability_maps`)."""
    return np.clip(np.stack([predict(img) for img in images]), 0.0, 1.0).astype(np.float32)


def write_stack(path: Path, stack: np.ndarray) -> dict[str, Any]:
    """Write a submission-format TIFF atomically (ImageJ ZYX float32 stack, one page per slice) and describe
    it: file and pixel sha256, shape, dtype, range, and the fraction of pixels called cell at 0.5 (about 0.78
    on ISBI 2012 for the right polarity)."""
    import tifffile

    from segbench.io import sha256_file, write_with

    check_format(stack, str(path))
    write_with(
        path, lambda tmp: tifffile.imwrite(tmp, stack, imagej=True, metadata={"axes": "ZYX"}), "submission"
    )
    return {
        "file": Path(path).name,
        "sha256": sha256_file(path),
        "pixel_sha256": pixel_sha256(stack),
        "shape": list(stack.shape),
        "dtype": str(stack.dtype),
        "range": [float(stack.min()), float(stack.max())],
        "cell_fraction_above_0.5": float(np.mean(stack > 0.5)),
        "convention": CONVENTION,
    }


def check_format(stack: np.ndarray, name: str) -> None:
    """The organisers' format: a 3-D float32 stack, finite, within [0, 1]; else one line naming ``name``."""
    if stack.ndim != 3 or stack.dtype != np.float32:
        raise InputError(
            f"{name}: a submission is a S x H x W float32 stack, got {stack.dtype} {stack.shape}"
        )
    if not np.isfinite(stack).all() or stack.min() < 0.0 or stack.max() > 1.0:
        raise InputError(f"{name}: submission values must be finite and within [0, 1] ({CONVENTION})")


def read_stack(path: Path) -> np.ndarray:
    """A submission-format TIFF read back and checked (:func:`check_format`)."""
    from segbench.data.biomedical import read_tiff

    stack = read_tiff(path, "ISBI submission")
    stack = stack[None] if stack.ndim == 2 else stack
    check_format(stack, str(path))
    return stack


def _run_record(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from segbench.io import read_json, sha256_file
    from segbench.provenance import config_hash, git_commit

    trained = read_json(run_dir / "train_done.json", "train record")
    weights = run_dir / "model_final.pt"
    return {
        "run": cfg["run"],
        "run_id": cfg["run_id"],
        "scale": cfg["scale"],
        "seed": cfg["seed"],
        "family": cfg["family"],
        "config_hash": config_hash(cfg),
        "trained_config_hash": trained.get("config_hash"),
        "weights_sha256": sha256_file(weights) if weights.is_file() else None,
        "git_commit": git_commit(),
        "test_time_versions": int(cfg.get("model", {}).get("test_time_rotations", 0)) + 1,
    }


def make_submission(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, out: Path | None = None, device: str | None = None
) -> dict[str, Any]:
    """Predict the test stack with the trained run and write ``out`` (default ``<run_dir>/isbi_submission.tif``)
    with its record (same name, ``.json``); returns the record."""
    from segbench.data.biomedical import normalize_intensity
    from segbench.io import write_json_atomic

    start = time.perf_counter()
    predict = predictor(cfg, run_dir, device)
    volume, source = load_test_stack(cfg, data_root)
    stack = predict_stack(predict, [normalize_intensity(s) for s in volume])
    out = Path(out) if out else Path(run_dir) / SUBMISSION
    record = {
        "what": "ISBI 2012 challenge submission: the test stack predicted by this run, "
        "for upload to http://brainiac2.mit.edu/isbi_challenge/",
        **_run_record(cfg, run_dir),
        "input": source,
        "output": write_stack(out, stack),
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    write_json_atomic(out.with_suffix(".json"), record)
    return record


def validate_on_training(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, out: Path | None = None, device: str | None = None
) -> dict[str, Any]:
    """The format check: write the run's held-out TRAINING slices as a submission file, read it back and
    score it with the evaluation's metrics; ``match`` says whether its three errors equal those the
    evaluation recorded in ``metrics.json`` (``None`` where the run is not evaluated). Also V_rand and
    V_info (thinned) of the file (the evaluation records them too, under ``isbi.thinned``; runs
    evaluated before lack them)."""
    from segbench.engine.biomedical import load_split
    from segbench.io import read_json
    from segbench.metrics.isbi import METRICS
    from segbench.metrics.isbi_pooled import isbi_metrics_with_counts
    from segbench.metrics.isbi_thinned import thinned_metrics
    from segbench.status import is_evaluated

    predict = predictor(cfg, run_dir, device)
    _, split = load_split(cfg, data_root)
    out = Path(out) if out else Path(run_dir) / HELD_OUT_SUBMISSION
    description = write_stack(out, predict_stack(predict, [img.image for img in split.held_out]))
    stack = read_stack(out)
    labels = np.stack([np.where(img.instances > 0, 255, 0).astype(np.uint8) for img in split.held_out])
    scored = isbi_metrics_with_counts(stack, labels)
    submitted = {m: scored[m] for m in METRICS}
    evaluated = None
    if is_evaluated(cfg, run_dir):
        isbi = read_json(run_dir / "metrics.json", "run metrics")["metrics"]["isbi"]
        evaluated = {m: isbi[m] for m in METRICS}
    thinned = thinned_metrics(stack, labels)
    return {
        "run_id": cfg["run_id"],
        "held_out": [img.name for img in split.held_out],
        "file": description,
        "submission_errors": submitted,
        "evaluation_errors": evaluated,
        "match": None if evaluated is None else submitted == evaluated,
        "thinned": {k: thinned[k] for k in ("v_rand", "v_info", "best_threshold")},
    }


def record_scores(
    cfg: dict[str, Any],
    run_dir: Path,
    scores: dict[str, float | None],
    *,
    date: str | None = None,
    source: str = "ISBI 2012 challenge server (http://brainiac2.mit.edu/isbi_challenge/)",
) -> dict[str, Any]:
    """Store the numbers the organisers returned for this run's submission in ``<run_dir>/isbi_official.json``,
    marked as theirs (never computed here); each value must be finite and within [0, 1]."""
    from segbench.io import read_json, write_json_atomic

    if not (Path(run_dir) / "train_done.json").is_file():
        raise InputError(
            f"{run_dir}: no trained run here; record the scores of a run you trained and submitted "
            f"(segbench isbi submission --run {cfg['run']} --scale {cfg['scale']} --seed {cfg['seed']})"
        )
    given = {k: v for k, v in scores.items() if v is not None}
    if not given:
        raise InputError(
            "record-scores: no score given; pass the organisers' numbers, e.g. --rand 0.0382 --warping 0.000353"
        )
    for name, value in given.items():
        if name not in OFFICIAL_METRICS:
            raise InputError(
                f"record-scores: unknown metric {name!r}; expected {', '.join(OFFICIAL_METRICS)}"
            )
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InputError(
                f"record-scores: {name} = {value!r} is outside [0, 1]; give the number the server shows"
            )
    when = date or dt.date.today().isoformat()
    try:
        dt.date.fromisoformat(when)
    except ValueError:
        raise InputError(
            f"record-scores: --date {when!r} is not YYYY-MM-DD; give the date the scores were returned"
        ) from None
    submission = run_dir / SUBMISSION_RECORD
    sub = read_json(submission, "submission record") if submission.is_file() else {}
    record = {
        "reported_by": "the ISBI 2012 organisers (challenge server); not computed by segbench",
        "run_id": cfg["run_id"],
        "scale": cfg["scale"],
        "metrics": given,
        "metric_names": {k: OFFICIAL_METRICS[k] for k in given},
        "date": when,
        "source": source,
        "submission_sha256": sub.get("output", {}).get("sha256"),
        "submission_config_hash": sub.get("config_hash"),
    }
    write_json_atomic(run_dir / OFFICIAL, record)
    return record


def read_official(run_dir: Path) -> dict[str, Any] | None:
    """The organisers' scores recorded for a run, or ``None``."""
    from segbench.io import read_json

    path = Path(run_dir) / OFFICIAL
    return read_json(path, "organisers' scores") if path.is_file() else None
