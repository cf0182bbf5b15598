"""The evaluation curve (val AP over the schedule, ``eval_curve.json``) of Mask R-CNN training at the smoke
scale on CPU: its points, resume without lost or repeated points, and a training RNG stream it leaves alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_data_coco import serve_tiny_coco

import segbench.engine.maskrcnn as engine
from segbench.engine import eval_curve
from segbench.engine.checkpoint import FINAL_MODEL
from segbench.errors import InputError
from segbench.io import read_jsonl
from segbench.records import EVAL_CURVE
from segbench.registry import resolve_run
from segbench.trainlog import TRAIN_LOG

RUN = "r50_c4"  # the smallest smoke model (4 iterations, checkpoints every 2)


pytestmark = pytest.mark.usefixtures("engine_on_tiny_coco")


def _cfg(points: int) -> dict[str, Any]:
    cfg = resolve_run(RUN, "smoke", 0)
    cfg["schedule"]["eval_points"] = points
    return cfg


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / FINAL_MODEL, weights_only=True)["model"]


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_jsonl(run_dir / TRAIN_LOG) if "iteration" in r]


def _curve(run_dir: Path) -> list[dict[str, Any]]:
    return json.loads((run_dir / EVAL_CURVE).read_text())


@pytest.fixture(scope="module")
def with_and_without(tmp_path_factory: pytest.TempPathFactory, tiny_coco) -> tuple[Path, Path]:
    """The same smoke run trained with a 4-point curve and without one."""
    dirs = tmp_path_factory.mktemp("curve"), tmp_path_factory.mktemp("plain")
    with pytest.MonkeyPatch.context() as mp:
        serve_tiny_coco(mp, tiny_coco)
        for run_dir, points in zip(dirs, (4, 0), strict=True):
            engine.train(_cfg(points), run_dir, Path("unused"))
    return dirs


def test_eval_iterations_spread_over_the_schedule():
    assert eval_curve.eval_iterations(160000, 4) == [40000, 80000, 120000, 160000]
    assert eval_curve.eval_iterations(4, 4) == [1, 2, 3, 4]
    assert eval_curve.eval_iterations(3, 8) == [1, 2, 3]  # never more points than iterations
    assert eval_curve.eval_iterations(500, 0) == []


def test_eval_points_default_and_bad_values():
    family = engine.MaskRCNNFamily(_cfg(0), Path("unused"), Path("unused"))
    cfg = resolve_run("r50_fpn", "mini", 0)
    assert "eval_points" not in cfg["schedule"] and eval_curve.eval_points(cfg, family) == 4
    assert eval_curve.eval_points(resolve_run(RUN, "smoke", 0), family) == 0  # smoke stays cheap
    with pytest.raises(InputError, match="eval_points=-1"):
        eval_curve.eval_points(_cfg(-1), family)


def test_a_bad_eval_points_stops_training_before_it_starts(tmp_path):
    with pytest.raises(InputError, match="eval_points='4'"):
        engine.train(
            {**_cfg(0), "schedule": {**_cfg(0)["schedule"], "eval_points": "4"}}, tmp_path, Path("x")
        )
    assert not (tmp_path / TRAIN_LOG).exists()


def test_curve_has_a_point_per_eval_iteration_with_each_iou_type(with_and_without):
    curve_dir, plain_dir = with_and_without
    curve = _curve(curve_dir)
    assert [p["iteration"] for p in curve] == [1, 2, 3, 4]
    for point in curve:
        assert set(point) == {"iteration", "bbox", "segm"}
        for iou_type in ("bbox", "segm"):
            assert set(point[iou_type]) == {"AP", "AP50", "AP75"}
            assert all(0.0 <= v <= 1.0 for v in point[iou_type].values())
    assert not (plain_dir / EVAL_CURVE).exists()


def test_the_curve_leaves_training_bit_identical(with_and_without):
    curve_dir, plain_dir = with_and_without
    assert _losses(curve_dir) == _losses(plain_dir)
    with_curve, without = _weights(curve_dir), _weights(plain_dir)
    assert all(torch.equal(with_curve[k], without[k]) for k in without)


class _DrawingFamily:
    """A hook that draws from the RNG and leaves the model in eval mode, like inference does."""

    schedule_defaults: dict[str, Any] = {}

    def evaluate_during_training(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        model.eval()
        return {"bbox": {"AP": float(torch.rand(()))}}


def test_add_eval_point_restores_the_rng_and_train_mode(tmp_path):
    net = torch.nn.Linear(2, 2)
    net.train()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    path = tmp_path / EVAL_CURVE
    eval_curve.add_eval_point(_DrawingFamily(), net, net, torch.device("cpu"), path, 7)
    assert torch.equal(torch.rand(3), expected)  # the hook's draw did not move the stream
    assert net.training
    assert [p["iteration"] for p in _curve(tmp_path)] == [7]


def test_truncate_eval_curve_keeps_points_up_to_the_checkpoint(tmp_path):
    path = tmp_path / EVAL_CURVE
    path.write_text(json.dumps([{"iteration": i} for i in (1, 2, 3)]))
    eval_curve.truncate_eval_curve(path, 2)
    assert [p["iteration"] for p in _curve(tmp_path)] == [1, 2]


def test_resume_keeps_earlier_points_and_reevaluates_later_ones(with_and_without, tmp_path, monkeypatch):
    curve_dir, _ = with_and_without
    cfg = _cfg(4)
    real, calls, stop_at = engine.forward_losses, [], [4]

    def forward(*args, **kwargs):
        calls.append(1)
        if len(calls) in stop_at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "forward_losses", forward)
    with pytest.raises(KeyboardInterrupt):  # at iteration 4: after the checkpoint at 2 and the point at 3
        engine.train(cfg, tmp_path, Path("unused"))
    killed = _curve(tmp_path)
    assert [p["iteration"] for p in killed] == [1, 2, 3]
    # mark the points: the one at the checkpoint must survive resume as it is, the one past it must go
    killed[0]["marker"] = killed[2]["marker"] = "before the kill"
    (tmp_path / EVAL_CURVE).write_text(json.dumps(killed))
    calls.clear()
    stop_at[:] = [1]  # killed again at the first step after resuming (iteration 3), before any evaluation
    with pytest.raises(KeyboardInterrupt):
        engine.train(cfg, tmp_path, Path("unused"))
    assert [(p["iteration"], p.get("marker")) for p in _curve(tmp_path)] == [
        (1, "before the kill"),
        (2, None),
    ]
    evaluated: list[int] = []
    real_hook = engine.MaskRCNNFamily.evaluate_during_training

    def hook(self, model, device):
        evaluated.append(1)
        return real_hook(self, model, device)

    monkeypatch.setattr(engine.MaskRCNNFamily, "evaluate_during_training", hook)
    stop_at.clear()
    summary = engine.train(cfg, tmp_path, Path("unused"))
    assert summary["resumed_from"] == 2 and len(evaluated) == 2  # iterations 3 and 4 only
    resumed = _curve(tmp_path)
    assert [p["iteration"] for p in resumed] == [1, 2, 3, 4]
    assert resumed[0].get("marker") == "before the kill" and "marker" not in resumed[2]
    reference = _curve(curve_dir)
    assert [{k: v for k, v in p.items() if k != "marker"} for p in resumed] == reference


def test_a_run_failing_before_its_first_checkpoint_leaves_no_curve_behind(tmp_path, monkeypatch):
    from segbench.engine import runner

    monkeypatch.setattr(runner, "dataset_of", lambda *args, **kwargs: None)
    real, calls = engine.forward_losses, []

    def forward(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # iteration 2: after the curve's point at 1, before the checkpoint at 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "forward_losses", forward)
    run_dir = tmp_path / "runs" / "r50_c4-seed0"
    with pytest.raises(KeyboardInterrupt):
        runner.train_run(_cfg(4), run_dir, Path("unused"))
    assert not run_dir.exists()  # the folder does not look like a run that started
