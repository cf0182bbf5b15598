"""Every Mask R-CNN run of the registry builds at smoke scale, trains one step and detects on 64x64 images."""

from __future__ import annotations

import math

import pytest
import torch

from segbench.models.maskrcnn import build_maskrcnn
from segbench.registry import load_registry, resolve_run

SIZE = 64
MASKRCNN_RUNS = sorted(name for name, run in load_registry()["runs"].items() if run["family"] == "maskrcnn")


def random_targets(
    num_images: int, num_keypoints: int, seed: int, num_classes: int = 81
) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(num_images):
        xy = torch.rand(3, 2, generator=g) * SIZE * 0.5
        boxes = torch.cat([xy, xy + 12 + torch.rand(3, 2, generator=g) * SIZE * 0.4], dim=1).clamp(
            max=SIZE - 1
        )
        masks = torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)
        for mask, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist(), strict=True):
            mask[y1:y2, x1:x2] = 1
        keypoints = torch.cat(
            [
                xy[:, None] + torch.rand(3, num_keypoints, 2, generator=g) * 12,
                torch.ones(3, num_keypoints, 1),
            ],
            dim=2,
        )
        targets.append(
            {
                "boxes": boxes,
                "labels": torch.tensor([1, 2, 5]).clamp(max=num_classes - 1),  # em_*: one class, cell
                "masks": masks,
                "keypoints": keypoints,
            }
        )
    return targets


def smoke_config(run: str) -> dict:
    cfg = resolve_run(run, "smoke", seed=0)
    cfg["model"]["box_score_thresh"] = (
        0.0  # random weights: keep detections so the mask/keypoint branches run
    )
    return cfg


@pytest.mark.parametrize("run", MASKRCNN_RUNS)
def test_registry_run_trains_one_step_and_detects(run: str) -> None:
    torch.manual_seed(0)
    cfg = smoke_config(run)
    tasks = cfg["model"]["tasks"]
    model = build_maskrcnn(cfg)
    assert model.segbench_init["backbone_weights"] == "random"  # smoke scale: pretrained false

    model.train()
    images = [torch.rand(3, SIZE, SIZE) for _ in range(2)]
    losses = model(
        images,
        random_targets(2, model.settings.num_keypoints, seed=1, num_classes=model.settings.num_classes),
    )
    assert ("loss_mask" in losses) == ("mask" in tasks)
    assert ("loss_keypoint" in losses) == ("keypoint" in tasks)
    total = sum(losses.values())
    assert math.isfinite(total.item())
    total.backward()
    assert model.roi_heads.box_predictor.cls_score.weight.grad is not None
    if "mask" in tasks:
        assert any(p.grad.abs().sum() > 0 for p in model.roi_heads.mask_predictor.parameters())

    model.eval()
    with torch.no_grad():
        (detections,) = model([torch.rand(3, SIZE, SIZE)])
    boxes = detections["boxes"]
    n = len(boxes)
    assert 0 < n <= cfg["model"]["detections_per_image"]
    assert (boxes[:, 2:] >= boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= SIZE
    assert detections["labels"].min() >= 1
    if "mask" in tasks:
        masks = detections["masks"]
        assert masks.shape == (n, 1, SIZE, SIZE) and masks.dtype == torch.uint8
        assert set(masks.unique().tolist()) <= {0, 1}
    else:
        assert "masks" not in detections
    if "keypoint" in tasks:
        assert detections["keypoints"].shape == (n, 17, 3)
    else:
        assert "keypoints" not in detections
