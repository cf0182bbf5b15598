"""Issue 33, item 1: training's deterministic mode never sends RoIAlign to torchvision's Python fallback.

``torchvision.ops.roi_align`` swaps its kernel for a pure-Python version under deterministic mode on CUDA
(the fallback condition is in torchvision/ops/roi_align.py), and that version needs gigabytes for mask
targets. These CPU tests arm a trap in its place and prove that segbench's RoI layers, the mask targets and
a whole Mask R-CNN training step never reach it; that the mask targets equal torchvision's bit for bit and
stay small at COCO's mask size; and that the run's record lists what ran non-deterministically.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.detection.roi_heads import project_masks_on_boxes

from segbench import determinism
from segbench.models.maskrcnn.mask_targets import mask_targets
from segbench.ops import MultiScaleRoIPooler, roi_align, roi_warp

ROOT = Path(__file__).resolve().parents[1]
TORCHVISION_ROI_ALIGN = sys.modules[
    "torchvision.ops.roi_align"
]  # the module (torchvision.ops.roi_align is the function)


class ClaimsCuda(torch.Tensor):
    """A CPU tensor that answers ``is_cuda`` with True: torchvision's fallback condition on a GPU."""

    @property
    def is_cuda(self) -> bool:  # type: ignore[override]
        return True


class FallbackTaken(AssertionError):
    pass


@pytest.fixture
def trap(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's Python RoIAlign raises; deterministic mode is on (restored after the test)."""

    def fallback(*args: object, **kwargs: object) -> None:
        raise FallbackTaken("torchvision.ops.roi_align took its Python fallback")

    monkeypatch.setattr(TORCHVISION_ROI_ALIGN, "_roi_align", fallback)
    with determinism.training_settings():
        yield


def random_case(gen: torch.Generator, h: int, w: int, n: int, k: int) -> tuple[torch.Tensor, ...]:
    """``n`` random binary masks, ``k`` boxes (some past the image's edge, some thinner than a pixel)."""
    masks = (torch.rand(n, h, w, generator=gen) > 0.5).to(torch.uint8)
    xy = torch.rand(k, 2, generator=gen) * torch.tensor([w, h]) * 0.9 - 2
    wh = torch.rand(k, 2, generator=gen) * torch.tensor([w, h]) * 0.6 + 0.3
    boxes = torch.cat([xy, xy + wh], dim=1)
    matched = torch.randint(0, n, (k,), generator=gen)
    return masks, boxes, matched


# -- mask targets ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("h", "w", "n", "k", "m"),
    [
        (64, 64, 3, 10, 28),
        (100, 134, 5, 16, 28),
        (177, 203, 7, 33, 14),
        (480, 640, 4, 12, 28),
        (37, 91, 1, 1, 7),
    ],
)
def test_mask_targets_equal_torchvisions_bit_for_bit(h: int, w: int, n: int, k: int, m: int) -> None:
    masks, boxes, matched = random_case(torch.Generator().manual_seed(h * w + k), h, w, n, k)
    ours = mask_targets(masks, boxes, matched, m)
    theirs = project_masks_on_boxes(masks, boxes, matched, m)
    assert ours.dtype == theirs.dtype == torch.float32 and ours.shape == (k, m, m)
    assert torch.equal(ours, theirs)
    # boolean masks too, and no RoI at all
    assert torch.equal(mask_targets(masks.bool(), boxes, matched, m), theirs)
    empty = mask_targets(masks, boxes[:0], matched[:0], m)
    assert empty.shape == (0, m, m)


def test_mask_targets_at_coco_size_stay_under_1gb() -> None:
    """16 instances of 800 x 1067 (COCO's mask size after resizing), 16 RoIs as large as the image, under
    deterministic mode: the process's peak RSS grows by less than 1 GB over its RSS before the call (about
    80 MiB measured; torchvision's fallback took 5.9 GB at 100 x 134)."""
    script = textwrap.dedent(
        """
        import json, resource, sys, torch
        from segbench.models.maskrcnn.mask_targets import mask_targets
        torch.use_deterministic_algorithms(True, warn_only=True)
        g = torch.Generator().manual_seed(0)
        masks = torch.zeros(16, 800, 1067, dtype=torch.uint8)
        for i in range(16):
            masks[i, 40 * i : 400 + 20 * i, 30 * i : 700 + 20 * i] = 1
        boxes = torch.tensor([[2.5 + i, 3.25, 1060.0 - i, 790.5] for i in range(16)])
        page_kib = resource.getpagesize() // 1024
        with open("/proc/self/statm") as statm:
            before = int(statm.read().split()[1]) * page_kib
        targets = mask_targets(masks, boxes, torch.arange(16), 28)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert targets.shape == (16, 28, 28) and 0 < float(targets.mean()) < 1
        print(json.dumps({"peak_kib": peak, "before_kib": before}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    assert measured["peak_kib"] - measured["before_kib"] < 1024 * 1024, measured  # KiB (Linux)


# -- no Python fallback, even when the tensor claims CUDA ------------------------------------------------------
@pytest.mark.usefixtures("trap")
def test_the_trap_catches_torchvisions_roi_align() -> None:
    """The armed trap does catch torchvision's function on a tensor that claims CUDA: the tests below would
    fail if segbench called ``torchvision.ops.roi_align`` or ``project_masks_on_boxes``."""
    x = torch.rand(1, 2, 16, 16).as_subclass(ClaimsCuda)
    rois = torch.tensor([[0.0, 1.0, 1.0, 9.0, 12.0]])
    with pytest.raises(FallbackTaken):
        torchvision.ops.roi_align(x, rois, 4)
    masks = torch.ones(1, 16, 16).as_subclass(ClaimsCuda)
    with pytest.raises(FallbackTaken):
        project_masks_on_boxes(
            masks, rois[:, 1:].as_subclass(ClaimsCuda), torch.zeros(1, dtype=torch.int64), 4
        )


@pytest.mark.usefixtures("trap")
def test_roi_layers_and_mask_targets_call_the_kernel_directly() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 24, generator=gen).as_subclass(ClaimsCuda)
    rois = torch.tensor([[0.0, 1.5, 2.0, 30.0, 28.0], [1.0, 0.0, 0.0, 47.0, 39.0]])
    with torch.no_grad():  # the kernel path (inference; on CUDA also training)
        for out in (
            roi_align(x, rois, 7, 0.5, -1),
            roi_align(x, rois, 7, 0.5, 2, aligned=True),
            roi_warp(x, rois, 7, 0.5, 2, aggregation="avg"),
        ):
            assert out.shape == (2, 3, 7, 7) and bool(torch.isfinite(out).all())
        pooler = MultiScaleRoIPooler(["0", "1"], 7, 2)
        feats = {"0": torch.rand(1, 4, 32, 32).as_subclass(ClaimsCuda), "1": torch.rand(1, 4, 16, 16)}
        pooled = pooler(
            feats, [torch.tensor([[1.0, 2.0, 40.0, 50.0], [0.0, 0.0, 120.0, 110.0]])], [(128, 128)]
        )
        assert pooled.shape == (2, 4, 7, 7)
    masks, boxes, matched = random_case(gen, 60, 70, 3, 8)
    targets = mask_targets(masks.as_subclass(ClaimsCuda), boxes.as_subclass(ClaimsCuda), matched, 28)
    assert torch.equal(targets.as_subclass(torch.Tensor), project_masks_on_boxes(masks, boxes, matched, 28))


@pytest.mark.usefixtures("trap")
@pytest.mark.parametrize("run", ["r50_fpn", "r50_c4_roiwarp_avg"])
def test_a_maskrcnn_training_step_and_inference_never_fall_back(
    run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole step (mask targets included) with torchvision's C++ ops reported missing, which sends every
    ``torchvision.ops.roi_align`` call to the trap on any device."""
    from segbench.bench.maskrcnn import bench_config, random_batch
    from segbench.models.maskrcnn import build_maskrcnn, settings_from_config

    monkeypatch.setattr(TORCHVISION_ROI_ALIGN, "_has_ops", lambda: False)
    cfg = bench_config(run, "smoke", (64, 64))
    s = settings_from_config(cfg)
    torch.manual_seed(0)
    model = build_maskrcnn(cfg)
    images, targets = random_batch(
        (64, 64), 2, 3, s.num_classes, s.tasks, s.num_keypoints, torch.device("cpu")
    )
    model.train()
    losses = model(images, targets)
    assert "loss_mask" in losses
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2 and "masks" in detections[0]


# -- deterministic settings and the record ---------------------------------------------------------------------
def test_seed_everything_sets_cudnn_and_training_settings_restore() -> None:
    from segbench.engine.seeding import seed_everything

    saved = determinism.settings()
    try:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
        with determinism.training_settings() as flags:
            assert flags["deterministic_algorithms"] and flags["warn_only"]
            assert flags["cudnn_deterministic"] and not flags["cudnn_benchmark"]
            assert flags["cublas_workspace_config"] == determinism.CUBLAS_WORKSPACE
        after = determinism.settings()
        assert not after["deterministic_algorithms"] and after["cudnn_benchmark"]
        assert not after["cudnn_deterministic"]
        seed_everything(3)
        assert determinism.settings() == flags
    finally:
        torch.use_deterministic_algorithms(saved["deterministic_algorithms"], warn_only=saved["warn_only"])
        torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
        torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]


class _PutBackward(torch.autograd.Function):
    """Identity forward; its backward runs ``put_`` (the one CPU op torch flags as non-deterministic)."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(grad.numel())
        out.put_(torch.arange(grad.numel()), grad.reshape(-1))
        return out.reshape(grad.shape)


def test_watch_records_ops_torch_flags_shows_each_once_and_passes_other_warnings() -> None:
    shown: list[str] = []

    def step() -> dict:
        for _ in range(3):
            torch.zeros(4).put_(torch.tensor([0, 1]), torch.tensor([1.0, 2.0]))
        x = torch.ones(3, requires_grad=True)
        _PutBackward.apply(x).sum().backward()  # flagged inside backward: still seen
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)
        return determinism.record()

    with determinism.training_settings(), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
        rec = determinism.watched(step)()
    assert rec["nondeterministic_ops"] == ["put_"] and rec["deterministic_algorithms"]
    assert sum("put_ does not have a deterministic" in m for m in shown) == 1
    assert "an unrelated warning" in shown
    assert determinism.record()["nondeterministic_ops"] is None  # outside a watch: not watched


def test_torchvision_kernels_lowers_the_flag_on_a_gpu_only_and_says_so() -> None:
    with determinism.training_settings(), determinism.watch() as seen:
        with determinism.torchvision_kernels(torch.device("cpu"), "x"):
            assert torch.are_deterministic_algorithms_enabled()
        assert not seen
        with determinism.torchvision_kernels(torch.device("cuda", 0), "torchvision MaskRCNN forward"):
            assert not torch.are_deterministic_algorithms_enabled()
        assert (
            torch.are_deterministic_algorithms_enabled()
            and torch.is_deterministic_algorithms_warn_only_enabled()
        )
        assert [op.startswith("torchvision MaskRCNN forward") for op in seen] == [True]


def test_train_done_records_determinism_in_provenance_not_in_the_config_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A smoke U-Net training whose SGD step also runs ``put_``: ``provenance.determinism`` of
    train_done.json names it, the summary stays as it was, and the config hash is the config's."""
    from segbench.data import prepare
    from segbench.engine import contract
    from segbench.engine.runner import train_run
    from segbench.provenance import config_hash, provenance
    from segbench.registry import resolve_run

    step = contract.sgd_step

    def flagged_step(*args: object) -> None:
        torch.zeros(2).put_(torch.tensor([0]), torch.tensor([1.0]))
        step(*args)

    monkeypatch.setattr(contract, "sgd_step", flagged_step)
    data = tmp_path / "data"
    prepare("em_smoke", data)
    cfg = resolve_run("unet_isbi", "smoke", 0)
    record = train_run(cfg, tmp_path / "run", data)
    done = json.loads((tmp_path / "run" / "train_done.json").read_text())
    assert done == json.loads(json.dumps(record))
    det = done["provenance"]["determinism"]
    assert det["nondeterministic_ops"] == ["put_"]
    assert det["deterministic_algorithms"] and det["cudnn_deterministic"] and not det["cudnn_benchmark"]
    assert "determinism" not in done["summary"]
    assert done["config_hash"] == config_hash(cfg) == provenance(cfg, determinism=det)["config_hash"]
    assert "determinism" not in provenance(cfg)  # only a training's record carries it
