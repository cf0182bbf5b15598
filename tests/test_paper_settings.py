"""The paper-scale Mask R-CNN runs carry the settings of He et al. 2017, section 3.1 (and section 5 for
keypoints), as transcribed in ../shared/reference/paper_tables.yaml (``maskrcnn.settings``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from segbench.engine.maskrcnn import effective_schedule
from segbench.models.maskrcnn import settings_from_config
from segbench.paths import REPO_ROOT
from segbench.registry import load_registry, resolve_run, runs_for_tables, table_names

PAPER_TABLES = Path(
    os.environ.get("SEGBENCH_PAPER_TABLES", REPO_ROOT.parent / "shared" / "reference" / "paper_tables.yaml")
)
REGISTRY = load_registry()
# the Mask R-CNN runs of the paper scale's tables (em_*: a real_cpu study, not defined at paper)
MASKRCNN_RUNS = sorted(
    {rs.run for rs in runs_for_tables(table_names(REGISTRY, "paper"), "paper", REGISTRY)}
    & {name for name, run in REGISTRY["runs"].items() if run["family"] == "maskrcnn"}
)


@pytest.fixture(scope="module")
def paper() -> dict:
    if not PAPER_TABLES.is_file():
        pytest.skip(f"{PAPER_TABLES} absent (the shared reference tables sit beside the checkout)")
    return yaml.safe_load(PAPER_TABLES.read_text(encoding="utf-8"))["maskrcnn"]["settings"]


@pytest.mark.parametrize("run", MASKRCNN_RUNS)
def test_paper_scale_run_carries_the_papers_settings(paper, run):
    cfg = resolve_run(run, "paper", 0)
    model = settings_from_config(cfg)
    is_keypoint = model.has_keypoint
    assert cfg["input"]["min_size"] == paper["image_short_side"]
    assert model.rpn_aspect_ratios and len(model.rpn_aspect_ratios) == paper["rpn_anchors"]["aspect_ratios"]
    assert len(model.rpn_anchor_sizes) == paper["rpn_anchors"]["scales"]
    assert model.positive_fraction == paper["positive_fraction"]
    assert model.roi_positive_iou == paper["roi_positive_iou"]
    assert model.detections_per_image == paper["test_detections_for_masks"]
    assert model.mask_threshold == paper["mask_threshold"]
    arch = {"c4": "C4", "fpn": "FPN"}.get(model.arch)  # C5 (Table 2d) has no setting of its own
    if arch:
        assert model.rois_per_image == paper["rois_per_image"][arch]
        assert model.rpn_post_nms_test == paper["test_proposals"][arch]
        assert model.mask_size == paper["mask_size"][arch]

    schedule = effective_schedule(cfg, replicas=paper["gpus"], gpus=paper["gpus"])
    assert schedule.rescaled is None and schedule.replicas == paper["gpus"]
    assert schedule.momentum == paper["momentum"] and schedule.weight_decay == paper["weight_decay"]
    assert schedule.lr_decay_factor == paper["lr_decay_factor"]
    if is_keypoint:
        kp = paper["keypoints"]
        assert (schedule.iterations, schedule.base_lr, schedule.lr_decay_at) == (
            kp["iterations"],
            kp["base_lr"],
            kp["lr_decay_at"],
        )
        assert schedule.train_scales == kp["train_scales"] and max(kp["train_scales"]) == kp["test_scale"]
        assert model.box_nms == kp["box_nms"]
    else:
        assert (schedule.iterations, schedule.lr_decay_at) == (paper["iterations"], paper["lr_decay_at"])
    if model.backbone.startswith("resnext"):
        per_gpu, lr = paper["resnext"]["images_per_gpu"], paper["resnext"]["base_lr"]
    else:
        per_gpu = paper["images_per_gpu"]
        lr = paper["keypoints"]["base_lr"] if is_keypoint else paper["base_lr"]
    assert schedule.images_per_replica == per_gpu
    assert schedule.images_per_batch == per_gpu * paper["gpus"]
    assert schedule.base_lr == lr
