"""U-Net and classical engines at the smoke scale: a step learns, resume is exact, metrics come out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from segbench.data import prepare
from segbench.engine import classical as classical_engine
from segbench.engine import unet as unet_engine
from segbench.engine.checkpoint import list_checkpoints
from segbench.errors import InputError
from segbench.io import read_jsonl
from segbench.models.unet import UNet
from segbench.registry import resolve_run
from segbench.trainlog import TRAIN_LOG


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for name in ("em_smoke", "phc_smoke"):
        prepare(name, root, progress=False)
    return root


def tiny(run: str, **schedule: Any) -> dict[str, Any]:
    """A smoke-scale run shrunk further: depth-2 U-Net, 60-pixel tiles (20-pixel outputs)."""
    cfg = resolve_run(run, scale="smoke", seed=0)
    if cfg["family"] == "unet":
        cfg["model"].update(depth=2, base_channels=2)
        cfg["input"]["tile"] = 60
        cfg["schedule"].update(schedule)
    return cfg


def test_a_training_step_reduces_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=2, dropout=0.0)
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((1, 1, 60, 60), dtype=np.float32))
    target = torch.from_numpy((rng.random((1, 20, 20)) > 0.5).astype(np.int64))
    weights = torch.from_numpy(rng.uniform(0.5, 5.0, (1, 20, 20)).astype(np.float32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.99)
    losses = []
    for _ in range(5):
        loss = unet_engine.weighted_cross_entropy(model(image), target, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_resume_after_interruption_gives_the_same_final_weights(data_root: Path, tmp_path: Path) -> None:
    cfg = tiny("unet_isbi", iterations=4, checkpoint_every=2)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    unet_engine.train(cfg, straight, data_root)
    unet_engine.train(cfg, interrupted, data_root)
    # Simulate a kill after the iteration-2 checkpoint: drop everything written later.
    (interrupted / "checkpoint_00000004.pt").unlink()
    (interrupted / unet_engine.FINAL_WEIGHTS).unlink()
    assert [p.name for p in list_checkpoints(interrupted)] == ["checkpoint_00000002.pt"]
    summary = unet_engine.train(cfg, interrupted, data_root)
    assert summary["resumed_from"] == 2
    log = read_jsonl(interrupted / TRAIN_LOG)
    assert [r["iteration"] for r in log if "iteration" in r] == [1, 2, 3, 4]  # no duplicated iterations
    final = [
        torch.load(d / unet_engine.FINAL_WEIGHTS, weights_only=True)["model"] for d in (straight, interrupted)
    ]
    initial = UNet(base_channels=2, depth=2).state_dict()
    assert any(not torch.equal(final[0][k], initial[k]) for k in initial)  # training changed the weights
    for key, value in final[0].items():
        assert torch.equal(value, final[1][key]), key


def test_worker_processes_draw_the_same_batches_as_the_main_process(data_root: Path, tmp_path: Path) -> None:
    """Batches are indexed by iteration, so 2 DataLoader workers reproduce the single-process stream."""
    cfg = tiny("unet_isbi")
    _, split = unet_engine.load_split(cfg, data_root)
    data = unet_engine.TrainingSet(split.train, (10.0, 5.0), tmp_path)
    batches = unet_engine.IterationBatches(
        data,
        seed=3,
        batch_size=2,
        input_tile=60,
        output_tile=20,
        params=unet_engine.augment_params(cfg["model"]),
    )
    cpu = torch.device("cpu")
    main = list(unet_engine.iteration_loader(batches, 1, 5, {"workers": 0}, cpu))
    workers = list(unet_engine.iteration_loader(batches, 1, 5, {"workers": 2}, cpu))
    assert len(main) == len(workers) == 4
    for a, b in zip(main, workers, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(main[0][0], main[1][0])  # iterations differ from each other
    again = list(unet_engine.iteration_loader(batches, 3, 5, {"workers": 0}, cpu))  # a resume at iteration 3
    assert all(torch.equal(x, y) for x, y in zip(again[0], main[2], strict=True))


def test_unet_evaluate_reports_isbi_metrics_on_held_out_slices(data_root: Path, tmp_path: Path) -> None:
    cfg = tiny("unet_isbi", iterations=1, checkpoint_every=1)
    cfg["model"]["test_time_rotations"] = 1
    unet_engine.train(cfg, tmp_path, data_root)
    metrics = unet_engine.evaluate(cfg, tmp_path, data_root)["isbi"]
    for key in ("warping_error", "rand_error", "pixel_error"):
        assert 0.0 <= metrics[key] <= 1.0
    assert set(metrics["best_threshold"]) == {"warping_error", "rand_error", "pixel_error"}
    assert metrics["held_out"] == ["slice03"] and "held out" in metrics["protocol"]
    assert metrics["test_time_versions"] == 2
    tile = json.loads((tmp_path / "overlap_tile.json").read_text())  # the report's Fig. 2 reads this record
    assert tile["run"] == "unet_isbi" and tile["input_tile"] - tile["output_size"] == 2 * tile["border"]


def test_unet_evaluate_records_per_slice_errors_and_every_held_out_prediction(
    data_root: Path, tmp_path: Path
) -> None:
    """Two held-out slices (2 folds of em_smoke's 4): ``per_slice`` has one entry per slice, in stack
    order, whose counts at the run's thresholds add up to the run's (so they give its pixel error) and
    whose warping errors average, weighted by pixels, to the run's; ``predictions_val.npz`` keeps Fig. 4's
    arrays and adds every held-out slice's P(cell) map."""
    from segbench.metrics.isbi import THRESHOLDS, f_score
    from segbench.records import CELL_EXAMPLE

    cfg = tiny("unet_isbi", iterations=1, checkpoint_every=1)
    cfg["split"] = {"fold": 0, "folds": 2}
    unet_engine.train(cfg, tmp_path, data_root)
    isbi = unet_engine.evaluate(cfg, tmp_path, data_root)["isbi"]
    slices = isbi["per_slice"]
    assert [(s["index"], s["name"]) for s in slices] == [(0, "slice00"), (1, "slice01")]
    assert [s["name"] for s in slices] == isbi["held_out"]
    assert sum(s["pixels"] for s in slices) == isbi["pixels"]
    k = {m: THRESHOLDS.index(isbi["best_threshold"][m]) for m in ("pixel_error", "warping_error")}
    tp, fp, fn = np.sum([s["counts"]["pixel"] for s in slices], axis=0)
    assert [tp, fp, fn] == isbi["counts"]["pixel"][k["pixel_error"]]
    assert 1.0 - f_score(tp, fp, fn) == isbi["pixel_error"]
    weighted = sum(s["warping_error"] * s["pixels"] for s in slices) / isbi["pixels"]
    assert weighted == pytest.approx(isbi["warping_error"], abs=1e-15)
    assert all(0.0 <= s[m] <= 1.0 for s in slices for m in ("warping_error", "rand_error", "pixel_error"))
    with np.load(tmp_path / CELL_EXAMPLE) as saved:
        assert {"image", "prediction", "ground_truth"} <= set(saved.files)  # U-Net Fig. 4's arrays
        assert saved["probabilities"].shape == (2, *saved["image"].shape)
        assert saved["probabilities"].dtype == np.float16 and saved["images"].dtype == np.float16
        assert saved["slice_index"].tolist() == [0, 1] and saved["names"].tolist() == isbi["held_out"]
        assert np.array_equal(saved["ground_truths"][0], saved["ground_truth"])
        p16 = saved["probabilities"][0].astype(np.float64)
        differ = (p16 > 0.5) != (saved["prediction"] > 0)  # float16 rounds P(cell) by at most 2.5e-4
        assert np.all(np.abs(p16[differ] - 0.5) <= 2.5e-4)


def test_unet_evaluate_records_the_thinned_scores_of_its_probability_maps(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``isbi.thinned``: V_rand and V_info (thinned) equal to ``thinned_metrics`` on the very P(cell) maps and
    labels the evaluation scored, with the per-threshold sums that pool folds; the other keys unchanged."""
    from segbench.engine import biomedical
    from segbench.metrics.isbi_pooled import isbi_metrics_with_counts
    from segbench.metrics.isbi_thinned import RECORD_KEYS, STAT_FIELDS, THINNED_THRESHOLDS, thinned_metrics

    seen: dict[str, Any] = {}

    def spy(fmt: str, split: Any, cell_probability: list[np.ndarray]) -> dict[str, Any]:
        seen.update(split=split, maps=[p.copy() for p in cell_probability])
        return biomedical.score_probability_maps(fmt, split, cell_probability)

    monkeypatch.setattr(unet_engine, "score_probability_maps", spy)
    cfg = tiny("unet_isbi", iterations=1, checkpoint_every=1)
    cfg["split"] = {"fold": 0, "folds": 2}
    unet_engine.train(cfg, tmp_path, data_root)
    isbi = unet_engine.evaluate(cfg, tmp_path, data_root)["isbi"]
    pred = np.clip(np.stack(seen["maps"]), 0.0, 1.0).astype(np.float32)
    labels = np.stack(
        [np.where(img.instances > 0, 255, 0).astype(np.uint8) for img in seen["split"].held_out]
    )
    direct = thinned_metrics(pred, labels)
    thinned = isbi["thinned"]
    assert {k: thinned[k] for k in RECORD_KEYS} == {k: direct[k] for k in RECORD_KEYS}
    assert thinned["best_threshold"] == direct["best_threshold"]
    assert set(thinned["sums"]) == {"thresholds", *STAT_FIELDS}
    assert thinned["sums"]["thresholds"] == list(THINNED_THRESHOLDS)
    old = isbi_metrics_with_counts(pred, labels)
    assert {k: isbi[k] for k in old} == old  # the three errors and their counts as before


def test_classical_engine_on_cell_tracking_data(data_root: Path, tmp_path: Path) -> None:
    cfg = tiny("threshold_phc")
    summary = classical_engine.train(cfg, tmp_path, data_root)
    assert summary["polarity"] in (1, -1) and 0.0 < summary["train_pixel_f"] <= 1.0
    metrics = classical_engine.evaluate(cfg, tmp_path, data_root)["ctc"]
    assert 0.0 <= metrics["seg"] <= 1.0 and 0.0 <= metrics["iou"] <= 1.0 and metrics["objects"] > 0


def test_input_normalization_standardizes_each_image_or_keeps_it() -> None:
    image = np.random.default_rng(0).uniform(0.3, 0.6, (40, 50)).astype(np.float32)
    z = unet_engine.normalize_input(image, {"input": {"normalize": "standardize"}})
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1.0) < 1e-4 and z.dtype == np.float32
    assert np.array_equal(unet_engine.normalize_input(image, {"input": {}}), z)  # the default
    assert unet_engine.normalize_input(image, {"input": {"normalize": "unit_range"}}) is image
    flat = np.full((8, 8), 0.5, np.float32)  # a constant image must not divide by zero
    assert np.all(np.isfinite(unet_engine.normalize_input(flat, {"input": {}})))
    with pytest.raises(InputError, match="'normalize'"):
        unet_engine.normalize_input(image, {"input": {"normalize": "zscore"}})
