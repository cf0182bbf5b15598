"""Mask R-CNN heads, losses and builder: Figure 4 and Table 2 shapes and parameter counts, by hand."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torchvision.models import resnet50, resnext101_32x8d
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops import FrozenBatchNorm2d

from segbench.errors import InputError
from segbench.models.maskrcnn import (
    MASK_HEADS,
    MaskHeadSpec,
    build_maskrcnn,
    describe_heads,
    register_mask_head,
    register_mask_loss,
    settings_from_config,
)
from segbench.models.maskrcnn.backbones import ScaledResNet, build_backbone
from segbench.models.maskrcnn.keypoint_heads import build_keypoint_head
from segbench.models.maskrcnn.losses import MASK_LOSSES, get_mask_loss, sigmoid_mask_loss, softmax_mask_loss
from segbench.models.maskrcnn.mask_heads import build_mask_head
from segbench.ops.poolers import map_levels
from segbench.registry import resolve_run

K = 80  # COCO object classes


def n_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def fc(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def paper_spec(**overrides) -> MaskHeadSpec:
    return MaskHeadSpec(
        **{
            "in_channels": 256,
            "roi_size": 14,
            "out_channels": K,
            "conv_dim": 256,
            "fc_dim": 1024,
            **overrides,
        }
    )


def smoke(run: str = "r50_c4", **model_keys) -> dict:
    cfg = resolve_run(run, "smoke")
    cfg["model"].update(model_keys)
    return cfg


# --- heads at the paper's widths (meta tensors: shapes and counts without memory) ---------------------


@pytest.fixture
def meta_device() -> Iterator[None]:
    with torch.device("meta"):
        yield


@pytest.mark.usefixtures("meta_device")
def test_fcn_mask_head_matches_figure4_right() -> None:
    head, predictor = build_mask_head("fcn", "fpn", paper_spec())
    assert n_params(head) == 4 * conv(256, 256, 3)
    assert n_params(predictor) == (256 * 256 * 2 * 2 + 256) + conv(256, K, 1)
    assert predictor(head(torch.empty(2, 256, 14, 14))).shape == (2, K, 28, 28)


@pytest.mark.parametrize(("name", "hidden"), [("mlp2", 2), ("mlp3", 3)])
@pytest.mark.usefixtures("meta_device")
def test_mlp_mask_heads_match_table2e(name: str, hidden: int) -> None:
    head, predictor = build_mask_head(name, "fpn", paper_spec())
    assert n_params(head) == fc(256 * 14 * 14, 1024) + (hidden - 1) * fc(1024, 1024)
    assert n_params(predictor) == fc(1024, K * 28 * 28)
    assert predictor(head(torch.empty(2, 256, 14, 14))).shape == (2, K, 28, 28)


@pytest.mark.usefixtures("meta_device")
def test_keypoint_head_is_eight_convs_deconv_and_2x_upsampling_to_56() -> None:
    head, predictor = build_keypoint_head(256, 512, 17)
    assert n_params(head) == conv(256, 512, 3) + 7 * conv(512, 512, 3)
    assert n_params(predictor) == conv(512, 17, 4)  # the 4x4 stride-2 deconv; the bilinear 2x has none
    assert predictor(head(torch.empty(2, 256, 14, 14))).shape == (2, 17, 56, 56)


@pytest.mark.usefixtures("meta_device")
def test_c4_head_is_stride1_res5_with_deconv_mask_branch() -> None:
    """Figure 4 left: 7x7x1024 RoI -> res5 (first conv stride 1) -> 7x7x2048 -> ave / deconv to 14x14."""
    s = settings_from_config({"model": {"backbone": "resnet50", "arch": "c4", "pretrained": False}})
    res5 = build_backbone(s).res5
    assert [m.stride for m in res5.modules() if isinstance(m, nn.Conv2d)] == [
        (1, 1)
    ] * 10  # 9 convs + shortcut
    features = res5(torch.empty(3, 1024, 7, 7))
    assert features.shape == (3, 2048, 7, 7)
    head, predictor = build_mask_head("default", "c4", paper_spec(in_channels=1024, roi_size=7, res5=res5))
    assert head is res5
    assert n_params(predictor) == (2048 * 256 * 2 * 2 + 256) + conv(256, K, 1)
    assert predictor(features).shape == (3, K, 14, 14)


@pytest.mark.usefixtures("meta_device")
def test_fpn_box_head_is_two_1024d_fc() -> None:
    cfg = {"model": {"arch": "fpn", "pretrained": False, "tasks": ["box"]}, "input": {"min_size": 64}}
    model = build_maskrcnn(cfg)
    head, predictor = model.roi_heads.box_head, model.roi_heads.box_predictor
    assert isinstance(head, TwoMLPHead)
    assert n_params(head) == fc(256 * 7 * 7, 1024) + fc(1024, 1024)
    assert n_params(predictor) == fc(1024, K + 1) + fc(1024, 4 * (K + 1))
    assert not model.roi_heads.has_mask()


@pytest.mark.parametrize(
    ("builder", "backbone"), [(resnet50, "resnet50"), (resnext101_32x8d, "resnext101_32x8d")]
)
@pytest.mark.usefixtures("meta_device")
def test_scaled_resnet_at_full_width_is_torchvisions(builder, backbone: str) -> None:
    s = settings_from_config({"model": {"backbone": backbone, "pretrained": False}})
    groups, width = (32, 8) if backbone.startswith("resnext") else (1, 64)
    ours = ScaledResNet(
        s.blocks, groups=groups, width_per_group=width, norm_layer=nn.BatchNorm2d
    ).state_dict()
    theirs = {k: v.shape for k, v in builder().state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.items()} == theirs


# --- mask losses (Table 2b) ---------------------------------------------------------------------------


def test_sigmoid_mask_loss_by_hand_uses_only_the_gt_class_channel() -> None:
    logits = torch.tensor([[[[0.3, -1.2]], [[2.0, 0.5]]]])  # 1 RoI, K=2 channels, 1x2 pixels
    target = torch.tensor([[[1.0, 0.0]]])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -(math.log(sig(2.0)) + math.log(1 - sig(0.5))) / 2  # class 2 -> channel 1
    assert sigmoid_mask_loss(logits, target, torch.tensor([2])).item() == pytest.approx(expected, rel=1e-6)
    other_class_changed = logits.clone()
    other_class_changed[0, 0] = 9.0
    assert sigmoid_mask_loss(other_class_changed, target, torch.tensor([2])).item() == pytest.approx(expected)


def test_softmax_mask_loss_by_hand_couples_the_classes() -> None:
    logits = torch.tensor([[[[0.1, 1.0]], [[0.4, -0.3]], [[1.5, 0.2]]]])  # background + K=2, 1x2 pixels
    target = torch.tensor([[[1.0, 0.0]]])  # pixel 0 inside the mask (class 2), pixel 1 background

    def log_softmax(values: list[float], i: int) -> float:
        return values[i] - math.log(sum(math.exp(v) for v in values))

    expected = -(log_softmax([0.1, 0.4, 1.5], 2) + log_softmax([1.0, -0.3, 0.2], 0)) / 2
    assert softmax_mask_loss(logits, target, torch.tensor([2])).item() == pytest.approx(expected, rel=1e-6)
    other_class_changed = logits.clone()
    other_class_changed[0, 1] = 9.0
    assert softmax_mask_loss(other_class_changed, target, torch.tensor([2])).item() > expected + 1


def test_mask_losses_of_no_positive_rois_are_zero_and_differentiable() -> None:
    logits = torch.zeros(0, 3, 4, 4, requires_grad=True)
    for loss in (sigmoid_mask_loss, softmax_mask_loss):
        value = loss(logits, torch.zeros(0, 4, 4), torch.zeros(0, dtype=torch.int64))
        value.backward()
        assert value.item() == 0


@pytest.mark.parametrize(
    ("mask_loss", "agnostic", "channels"),
    [("sigmoid", False, K), ("sigmoid", True, 1), ("softmax", False, K + 1), ("softmax", True, 2)],
)
def test_mask_channels_follow_loss_and_class_agnosticism(
    mask_loss: str, agnostic: bool, channels: int
) -> None:
    model = build_maskrcnn(smoke(mask_loss=mask_loss, class_agnostic=agnostic))
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == channels
    assert model.roi_heads.class_agnostic_masks is agnostic


# --- builder -------------------------------------------------------------------------------------------


def _module_tree(model: nn.Module) -> list[tuple[str, str, tuple]]:
    return [
        (name, type(m).__name__, tuple((n, p.shape) for n, p in m.named_parameters(recurse=False)))
        for name, m in model.named_modules()
    ]


def _roi_layer(pooler: nn.Module) -> tuple:
    fn = pooler.roi_layer_fn
    return getattr(fn, "func", fn).__name__, dict(getattr(fn, "keywords", {}))


def test_table2c_variants_differ_only_in_the_roi_layer() -> None:
    runs = ["r50_c4", "r50_c4_roipool", "r50_c4_roiwarp_max", "r50_c4_roiwarp_avg", "r50_c4_roialign_max"]
    models = [build_maskrcnn(smoke(run)) for run in runs]
    reference = models[0]
    for model in models[1:]:
        assert _module_tree(model) == _module_tree(reference)
        changed = {
            f.name
            for f in dataclasses.fields(model.settings)
            if getattr(model.settings, f.name) != getattr(reference.settings, f.name)
        }
        assert changed <= {"roi_layer", "roi_aggregation"} and changed
    layers = [_roi_layer(m.roi_heads.box_roi_pool) for m in models]
    assert len(set(map(repr, layers))) == len(runs)
    assert layers[0] == ("roi_align", {"aggregation": "avg", "aligned": False})
    assert all(
        m.roi_heads.mask_roi_pool is m.roi_heads.box_roi_pool for m in models
    )  # C4 shares res5 and RoI


def test_c4_mask_branch_reuses_res5_features_in_training_and_reruns_res5_at_test() -> None:
    model = build_maskrcnn(smoke("r50_c4", box_score_thresh=0.0))
    calls = []
    model.roi_heads.box_head.register_forward_hook(lambda *_: calls.append(1))
    boxes = torch.tensor([[4.0, 4.0, 40.0, 44.0]])
    target = {"boxes": boxes, "labels": torch.tensor([3]), "masks": torch.ones(1, 64, 64, dtype=torch.uint8)}
    model.train()
    model([torch.rand(3, 64, 64)], [target])
    assert len(calls) == 1
    model.eval()
    with torch.no_grad():
        model([torch.rand(3, 64, 64)])
    assert len(calls) == 3


def test_paper_scale_settings_per_arch() -> None:
    c4, fpn = (settings_from_config(resolve_run(run, "paper")) for run in ("r50_c4", "r50_fpn"))
    assert (c4.rois_per_image, c4.rpn_post_nms_test, c4.mask_size, c4.mask_roi_size) == (64, 300, 14, 7)
    assert (fpn.rois_per_image, fpn.rpn_post_nms_test, fpn.mask_size, fpn.mask_roi_size) == (
        512,
        1000,
        28,
        14,
    )
    assert (c4.positive_fraction, c4.roi_positive_iou, c4.detections_per_image) == (0.25, 0.5, 100)
    assert len(c4.rpn_anchor_sizes) * len(c4.rpn_aspect_ratios) == 15


def test_smoke_model_uses_per_arch_sampling_and_anchors() -> None:
    c4, fpn = build_maskrcnn(smoke("r50_c4")), build_maskrcnn(smoke("r50_fpn"))
    assert c4.roi_heads.fg_bg_sampler.batch_size_per_image == 16
    assert fpn.roi_heads.fg_bg_sampler.batch_size_per_image == 32
    assert c4.rpn.anchor_generator.num_anchors_per_location() == [15]
    assert fpn.rpn.anchor_generator.num_anchors_per_location() == [3] * 5


def test_roi_canonical_scale_reaches_every_fpn_pooler_and_moves_rois_between_levels() -> None:
    """FPN eq. 1's canonical 224 by default (ours and the torchvision reference); the model key changes
    it in the box, mask and keypoint poolers alike, and so the level a RoI is pooled from."""
    default = build_maskrcnn(smoke("r50_fpn_person_kp_mask"))
    moved = build_maskrcnn(smoke("r50_fpn_person_kp_mask", roi_canonical_scale=56))
    reference = build_maskrcnn(smoke("r50_fpn", implementation="torchvision", roi_canonical_scale=56))
    names = ("box_roi_pool", "mask_roi_pool", "keypoint_roi_pool")
    assert [getattr(default.roi_heads, n).canonical_scale for n in names] == [224] * 3
    assert [getattr(moved.roi_heads, n).canonical_scale for n in names] == [56] * 3
    assert [getattr(reference.roi_heads, n).canonical_scale for n in names[:2]] == [56] * 2
    box = [torch.tensor([[0.0, 0.0, 56.0, 56.0]])]  # sqrt(wh) = 56: P2 at 224, P4 at 56
    assert map_levels(box, 2, 5, default.roi_heads.box_roi_pool.canonical_scale).item() == 0
    assert map_levels(box, 2, 5, moved.roi_heads.box_roi_pool.canonical_scale).item() == 2


@pytest.mark.parametrize("value", [0, -56, 56.5, "56", True])
def test_bad_roi_canonical_scale_is_one_line(value) -> None:
    with pytest.raises(InputError, match=r"^model key 'roi_canonical_scale': .* must be an int >= 1$"):
        build_maskrcnn(smoke("r50_fpn", roi_canonical_scale=value))


def test_num_classes_from_model_then_dataset_then_coco() -> None:
    cfg = smoke()
    assert settings_from_config(cfg).num_classes == 81
    cfg["dataset"]["num_classes"] = 4
    assert settings_from_config(cfg).num_classes == 4
    cfg["model"]["num_classes"] = 2
    model = build_maskrcnn(cfg)
    assert model.roi_heads.box_predictor.cls_score.out_features == 2
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 1


def test_init_is_recorded() -> None:
    # smoke asks for pretraining (in miniature: the engine passes pretrained_weights); built without it,
    # the backbone is random and says why ImageNet's weights do not apply
    assert build_maskrcnn(smoke(pretrained=False)).segbench_init == {
        "backbone_weights": "random",
        "weights": None,
        "reason": None,
        "norm": "bn",
        "frozen_stages": (),
    }
    init = build_maskrcnn(smoke(pretrained=True, norm="frozen_bn")).segbench_init
    assert init["backbone_weights"] == "random" and "width_divisor" in init["reason"]
    assert init["norm"] == "frozen_bn"


@pytest.mark.parametrize(
    "norm, layer", [("gn", torch.nn.GroupNorm), ("none", torch.nn.Identity), ("bn", torch.nn.BatchNorm2d)]
)
def test_norm_choice_reaches_every_backbone_norm(norm: str, layer: type) -> None:
    """Every norm slot of the ResNet (stem, bottlenecks, downsample, C4's res5) gets the chosen layer."""
    model = build_maskrcnn(smoke("r50_c4", norm=norm))
    resnet_parts = [model.backbone, model.roi_heads.box_head]
    slots = [
        m
        for part in resnet_parts
        for name, m in part.named_modules()
        if name.rsplit(".", 1)[-1].startswith("bn") or name.endswith("downsample.1")
    ]
    assert slots and all(type(m) is layer for m in slots)
    if norm == "gn":  # 32 groups where the width allows, otherwise as many as divide the channels
        assert all(m.num_groups == math.gcd(32, m.num_channels) for m in slots)
    assert model.segbench_init["norm"] == norm


def test_describe_heads_lists_every_layer_once() -> None:
    model = build_maskrcnn(smoke("r50_c4"))
    rows = describe_heads(model)
    heads = model.roi_heads
    assert sum(r["params"] for r in rows) == n_params(
        heads.box_head, heads.box_predictor, heads.mask_predictor
    )
    outputs = {r["branch"]: r["output_shape"] for r in rows if r["layer"] == "output"}
    assert outputs == {"box": [(81,), (324,)], "mask": (K, 14, 14)}
    assert [
        r["shared_with_box"] for r in rows if r["branch"] == "mask" and r["layer"].startswith("head")
    ] == [True]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("backbone", "vgg16"),
        ("arch", "c3"),
        ("mask_head", "mlp9"),
        ("mask_loss", "dice"),
        ("roi_layer", "roi_crop"),
        ("tasks", ["seg"]),
        ("rois_per_img", 64),
    ],
)
def test_bad_names_raise_one_line_input_errors(key: str, value) -> None:
    with pytest.raises(InputError) as err:
        build_maskrcnn(smoke(**{key: value}))
    message = str(err.value)
    assert "\n" not in message and repr(key) in message
    if key != "rois_per_img":  # a misspelt key is named; a bad value is named with the valid ones
        assert repr(value if key != "tasks" else value[0]) in message and "valid" in message


def test_registered_mask_head_and_loss_plug_in() -> None:
    def tiny_head(spec: MaskHeadSpec) -> tuple[nn.Module, nn.Module]:
        return nn.Identity(), nn.Sequential(nn.ConvTranspose2d(spec.in_channels, spec.out_channels, 2, 2))

    register_mask_head("tiny_test", tiny_head)
    register_mask_loss("sigmoid_test", get_mask_loss("sigmoid"))
    try:
        model = build_maskrcnn(smoke("r50_fpn", mask_head="tiny_test", mask_loss="sigmoid_test"))
        assert isinstance(model.roi_heads.mask_head, nn.Identity)
        with pytest.raises(InputError):
            register_mask_head("fcn", tiny_head)
    finally:
        MASK_HEADS.pop("tiny_test")
        MASK_LOSSES.pop("sigmoid_test")


class _FakeWeights:
    """Stands in for a torchvision weights enum: offline-safe, and able to fail on demand."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def get_state_dict(self, **_: object) -> dict:
        if self.error is not None:
            raise self.error
        return resnet50().state_dict()

    def __str__(self) -> str:
        return "FakeWeights.IMAGENET"


@pytest.mark.usefixtures("meta_device")
def test_imagenet_weights_load_freeze_stem_and_res2_or_fall_back_to_random(monkeypatch) -> None:
    from segbench.models.maskrcnn import backbones

    s = settings_from_config({"model": {"backbone": "resnet50", "arch": "c4", "pretrained": True}})
    monkeypatch.setattr(backbones, "imagenet_weights", lambda backbone: _FakeWeights())
    built = build_backbone(s)
    assert dataclasses.asdict(built.init) == {
        "backbone_weights": "imagenet",
        "weights": "FakeWeights.IMAGENET",
        "reason": None,
        "norm": "frozen_bn",
        "frozen_stages": ("conv1", "bn1", "layer1"),
    }
    trainable = {name.split(".")[0] for name, p in built.trunk.named_parameters() if p.requires_grad}
    assert trainable == {"layer2", "layer3"}
    assert any(isinstance(m, FrozenBatchNorm2d) for m in built.res5.modules())

    monkeypatch.setattr(backbones, "imagenet_weights", lambda backbone: _FakeWeights(OSError("offline")))
    init = build_backbone(s).init
    assert (init.backbone_weights, init.norm, init.frozen_stages) == ("random", "bn", ())
    assert "OSError: offline" in init.reason


@pytest.mark.parametrize(
    "run", ["r50_fpn_person_kp_mask", "r50_c4", "r50_c5_roialign", "x101_fpn", "r50_fpn_mlp2"]
)
def test_every_head_trains_channels_last(run: str) -> None:
    """The engine trains Mask R-CNN channels-last on the CPU (``channels_last_on_cpu``): every head's
    loss must take NHWC activations (torchvision's keypoint loss views its logits, and failed)."""
    torch.manual_seed(0)
    cfg = smoke(run, pretrained=False)
    keypoints = "keypoint" in cfg["model"]["tasks"]
    cfg["model"]["num_classes"] = 2 if keypoints else 3
    model = build_maskrcnn(cfg).to(memory_format=torch.channels_last).train()
    size = cfg["input"]["max_size"]
    boxes = torch.tensor(
        [[4.0, 6.0, size * 0.6, size * 0.8], [size * 0.3, size * 0.2, size - 2.0, size - 4.0]]
    )
    masks = torch.zeros(2, size, size, dtype=torch.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist(), strict=True):
        m[y1:y2, x1:x2] = 1
    target = {"boxes": boxes, "labels": torch.tensor([1, 1]), "masks": masks}
    if keypoints:
        xy = boxes[:, None, :2] + torch.rand(2, 17, 2) * (boxes[:, None, 2:] - boxes[:, None, :2])
        target["keypoints"] = torch.cat([xy, torch.full((2, 17, 1), 2.0)], dim=2)
    losses = model([torch.rand(3, size, size)], [target])
    assert (not keypoints) or "loss_keypoint" in losses
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
