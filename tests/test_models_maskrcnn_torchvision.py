"""implementation: torchvision (run r50_fpn_torchvision): torchvision's own MaskRCNN around our FPN backbone,
with our settings, trained and evaluated by the unchanged engine at the smoke scale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.models.detection.mask_rcnn import MaskRCNN as TorchvisionMaskRCNN
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import MultiScaleRoIAlign

import segbench.engine.maskrcnn as engine
from segbench.engine.checkpoint import FINAL_MODEL
from segbench.errors import InputError
from segbench.models.maskrcnn import build_maskrcnn
from segbench.models.maskrcnn.builder import BinaryMaskTransform
from segbench.models.maskrcnn.roi_heads import MaskRCNNRoIHeads
from segbench.registry import load_registry, resolve_run

RUN, OURS = "r50_fpn_torchvision", "r50_fpn"


def test_the_reference_run_is_r50_fpn_plus_the_implementation_key():
    runs = load_registry()["runs"]
    assert runs[RUN]["model"] == {**runs[OURS]["model"], "implementation": "torchvision"}


def test_torchvision_model_shares_our_backbone_and_settings():
    cfg, ours_cfg = resolve_run(RUN, "smoke", 0), resolve_run(OURS, "smoke", 0)
    torch.manual_seed(0)
    ref = build_maskrcnn(cfg)
    torch.manual_seed(0)
    ours = build_maskrcnn(ours_cfg)
    assert isinstance(ref, TorchvisionMaskRCNN) and type(ref.roi_heads) is RoIHeads
    assert isinstance(ours.roi_heads, MaskRCNNRoIHeads)
    # the same backbone, built by the same function from the same seed: equal weights
    ref_bb, ours_bb = ref.backbone.state_dict(), ours.backbone.state_dict()
    assert ref_bb.keys() == ours_bb.keys()
    assert all(torch.equal(ref_bb[k], ours_bb[k]) for k in ref_bb)
    assert ref.segbench_init == ours.segbench_init
    # input: sizes, ImageNet mean/std, binarised masks
    assert isinstance(ref.transform, BinaryMaskTransform)
    for attr in ("min_size", "max_size", "image_mean", "image_std", "mask_threshold", "size_divisible"):
        assert getattr(ref.transform, attr) == getattr(ours.transform, attr), attr
    # RPN: anchors, sampling, NMS, proposal counts
    for attr in ("_pre_nms_top_n", "_post_nms_top_n", "nms_thresh", "score_thresh", "min_size"):
        assert getattr(ref.rpn, attr) == getattr(ours.rpn, attr), attr
    assert ref.rpn.anchor_generator.sizes == ours.rpn.anchor_generator.sizes
    assert ref.rpn.anchor_generator.aspect_ratios == ours.rpn.anchor_generator.aspect_ratios
    for attr in ("batch_size_per_image", "positive_fraction"):
        assert getattr(ref.rpn.fg_bg_sampler, attr) == getattr(ours.rpn.fg_bg_sampler, attr)
        assert getattr(ref.roi_heads.fg_bg_sampler, attr) == getattr(ours.roi_heads.fg_bg_sampler, attr)
    for attr in ("high_threshold", "low_threshold"):
        assert getattr(ref.rpn.proposal_matcher, attr) == getattr(ours.rpn.proposal_matcher, attr)
        assert getattr(ref.roi_heads.proposal_matcher, attr) == getattr(ours.roi_heads.proposal_matcher, attr)
    # RoI heads: test-time rule, RoI sizes (RoIAlign, aligned=False as the paper's), head widths
    for attr in ("score_thresh", "nms_thresh", "detections_per_img"):
        assert getattr(ref.roi_heads, attr) == getattr(ours.roi_heads, attr), attr
    s = ours.settings
    assert ref.settings == s.__class__(**{**s.__dict__, "implementation": "torchvision"})
    for pool, size in (
        (ref.roi_heads.box_roi_pool, s.box_roi_size),
        (ref.roi_heads.mask_roi_pool, s.mask_roi_size),
    ):
        assert isinstance(pool, MultiScaleRoIAlign) and pool.output_size == (size, size)
        assert pool.sampling_ratio == s.sampling_ratio and pool.featmap_names == ["0", "1", "2", "3"]
    assert ref.roi_heads.box_head.fc7.out_features == ours.roi_heads.box_head.fc7.out_features
    assert ref.roi_heads.box_predictor.cls_score.out_features == s.num_classes


def test_box_only_torchvision_run_has_no_mask_branch():
    cfg = resolve_run(RUN, "smoke", 0)
    cfg["model"]["tasks"] = ["box"]
    assert not build_maskrcnn(cfg).roi_heads.has_mask()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("arch", "c4"),
        ("arch", "c5"),
        ("roi_layer", "roi_pool"),
        ("mask_loss", "softmax"),
        ("class_agnostic", True),
        ("tasks", ["box", "keypoint"]),
        ("mask_head", "mlp2"),
    ],
)
def test_what_torchvision_cannot_build_is_a_one_line_input_error(key, value):
    cfg = resolve_run(RUN, "smoke", 0)
    cfg["model"][key] = value
    with pytest.raises(InputError, match="implementation: torchvision") as err:
        build_maskrcnn(cfg)
    assert "\n" not in str(err.value)


def test_unknown_implementation_is_refused():
    cfg = resolve_run(OURS, "smoke", 0)
    cfg["model"]["implementation"] = "detectron"
    with pytest.raises(InputError, match="'implementation'.*valid: segbench, torchvision"):
        build_maskrcnn(cfg)


def test_torchvision_run_trains_one_step_and_evaluates_through_the_engine(tmp_path, engine_on_tiny_coco):
    cfg = resolve_run(RUN, "smoke", 0)
    cfg["schedule"].update(iterations=1, checkpoint_every=1, lr_decay_at=[], warmup_iters=0)
    cfg["model"]["box_score_thresh"] = 0.0  # one step from random weights: keep detections to check them
    run_dir = tmp_path / "run"
    engine.train(cfg, run_dir, Path("unused"))
    final = torch.load(run_dir / FINAL_MODEL, weights_only=True)
    assert any(k.startswith("roi_heads.mask_head.") for k in final["model"])  # torchvision's MaskRCNNHeads

    metrics = engine.evaluate(cfg, run_dir, Path("unused"))
    assert set(metrics) == {"bbox", "segm", "eval"}
    assert all(0.0 <= metrics[t]["AP"] <= 1.0 for t in ("bbox", "segm"))
    predictions = json.loads((run_dir / "predictions_val.json").read_text())
    assert set(predictions) == {"bbox", "segm"} and predictions["segm"]
    assert len(predictions["bbox"]) == len(predictions["segm"])
    categories = set(
        json.loads(engine_on_tiny_coco["val"]["annotations"].read_text())["categories"][i]["id"]
        for i in (0, 1)
    )
    for box, seg in zip(predictions["bbox"], predictions["segm"], strict=True):
        assert box["image_id"] == seg["image_id"] and box["category_id"] == seg["category_id"] in categories
        assert box["score"] == seg["score"] and len(box["bbox"]) == 4
        mask = mask_utils.decode({**seg["segmentation"], "counts": seg["segmentation"]["counts"].encode()})
        assert set(mask.flatten().tolist()) <= {0, 1}
    heads = json.loads((run_dir / "heads.json").read_text())
    assert {r["branch"] for r in heads["rows"]} == {"box", "mask"}
