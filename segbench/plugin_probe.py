"""The probe of a method run: the plugin on the real sizes of the scale's evaluation, before any training.

:func:`segbench.plugins.resolve_plugin` checks a plugin's contract on small, fixed inputs. A method run
(:func:`segbench.plugins.method_run_config`) fixes the sizes the engine will really use, and
:func:`probe_method_run` checks the plugin on those:

- U-Net-family model: the attributes the U-Net engine reads (``padding``, ``size_multiple``, ``depth``,
  ``output_size``), then a forward pass on the scale's training tile (``input.tile`` rounded as the engine
  rounds it) and on its evaluation tile: logits ``[N, num_classes, H, W]`` with the output size that the
  loss (training) and the overlap-tile stitching (evaluation) expect;
- U-Net loss: called with the engine's logits, target and weight-map shapes and dtypes at that tile and
  batch size; it must return a finite scalar with a gradient;
- RoI layer, mask head, mask loss: their shapes at the scale's RoI and mask sizes (the arch's feature
  strides and channels), then one training step and one inference of the run's Mask R-CNN on an image of
  the scale's size (``input.min_size``), as the engine builds it;
- Mask R-CNN model: the same training step and inference, and the layer table the evaluation writes.

Every breach is one :class:`~segbench.errors.InputError` line: what was expected and what came back.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from segbench.errors import InputError
from segbench.plugins import Plugin, raised

UNET_MODEL_ATTRIBUTES = ("padding", "size_multiple", "depth", "output_size")
FPN_STRIDES = (4, 8, 16, 32)  # P2..P5, the maps FPN pools RoIs from


def probe_method_run(plugin: Plugin, cfg: dict[str, Any]) -> None:
    """Check ``plugin`` on the sizes of the method run ``cfg`` (a resolved run config with the plugin's
    component swapped in); raises a one-line :class:`InputError` on the first breach."""
    family = cfg["family"]
    if family == "unet" and plugin.kind == "model":
        probe_unet_model(plugin, cfg)
    elif family == "unet" and plugin.kind == "unet_loss":
        probe_unet_loss(plugin, cfg)
    elif family == "maskrcnn":
        probe_maskrcnn(plugin, cfg)


def _breach(plugin: Plugin, cfg: dict[str, Any], what: str) -> InputError:
    return InputError(
        f"plugin {plugin.spec!r} breaks the {plugin.kind} contract at scale {cfg['scale']} "
        f"(run {cfg['run']}): {what}; fix the plugin (contracts: docs/adding_a_method.md)"
    )


def _raised(exc: BaseException, plugin: Plugin) -> str:
    """What the plugin raised and where in its code (``file:line``)."""
    return raised(exc, plugin.spec)


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {list(value.shape)}"
    return f"a {type(value).__name__}"


# ----------------------------------------------------------------------------------------------------------
# U-Net
# ----------------------------------------------------------------------------------------------------------
def _unet_tiles(model: nn.Module, cfg: dict[str, Any]) -> tuple[int, int, int, int]:
    """(training input, training output, evaluation input, evaluation output) sides, as the engine
    computes them (:mod:`segbench.engine.unet`, :class:`segbench.engine.overlap_tile.TileGeometry`)."""
    from segbench.engine.overlap_tile import TileGeometry
    from segbench.engine.unet import evaluation_tile, training_tiles

    train_in, train_out = training_tiles(model, int(cfg["input"]["tile"]))
    eval_in = evaluation_tile(model, train_in, cfg)
    TileGeometry.for_model(model, eval_in)  # the stitching step must fit the evaluation tile
    return train_in, train_out, eval_in, int(model.output_size(eval_in))


def probe_unet_model(plugin: Plugin, cfg: dict[str, Any]) -> None:
    """A U-Net-family model on the scale's training and evaluation tiles."""
    model_cfg = cfg.get("model", {})
    classes, in_channels = int(model_cfg.get("num_classes", 2)), int(model_cfg.get("in_channels", 1))
    try:
        model = plugin.obj(copy.deepcopy(cfg))
    except Exception as exc:  # noqa: BLE001 - third-party code: any failure is a breach
        raise _breach(plugin, cfg, f"factory(cfg) raised {_raised(exc, plugin)}") from None
    if not isinstance(model, nn.Module):
        raise _breach(plugin, cfg, f"expected factory(cfg) to return a torch.nn.Module, got {_shape(model)}")
    missing = [name for name in UNET_MODEL_ATTRIBUTES if not hasattr(model, name)]
    if missing:
        raise _breach(
            plugin,
            cfg,
            "the U-Net engine reads model.padding (bool), model.size_multiple (int), model.depth (int) "
            f"and model.output_size(side) -> int; {type(model).__name__} has no {', '.join(missing)}",
        )
    tile = int(cfg["input"]["tile"])
    try:
        train_in, train_out, eval_in, eval_out = _unet_tiles(model, cfg)
    except Exception as exc:  # noqa: BLE001
        raise _breach(
            plugin,
            cfg,
            f"the tile geometry for input.tile {tile} (padding={model.padding!r}, depth={model.depth!r}, "
            f"size_multiple={model.size_multiple!r}) raised {_raised(exc, plugin)}",
        ) from None
    why_train = (
        "padding=True: output side = input side"
        if model.padding
        else f"padding=False: the valid output of a depth-{model.depth} U-Net, which the target is cropped to"
    )
    stages = (
        ("training", train_in, train_out, why_train, True),
        ("evaluation", eval_in, eval_out, f"model.output_size({eval_in}), used by overlap-tile", False),
    )
    for stage, side, want, why, training in stages:
        x = torch.zeros(1, in_channels, side, side)
        try:
            with torch.no_grad():
                out = model.train(training)(x)
        except Exception as exc:  # noqa: BLE001
            raise _breach(
                plugin,
                cfg,
                f"forward on the {stage} tile [1, {in_channels}, {side}, {side}] raised {_raised(exc, plugin)}",
            ) from None
        expected = [1, classes, want, want]
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            raise _breach(
                plugin,
                cfg,
                f"on the {stage} tile [1, {in_channels}, {side}, {side}] expected logits [N, num_classes, H, W] "
                f"= {expected}, got {_shape(out)}",
            )
        if out.shape[1] != classes:
            raise _breach(
                plugin,
                cfg,
                f"expected {classes} output channels (model.num_classes: the engine's cross entropy and "
                f"P(cell) = softmax channel 1), got {out.shape[1]} (logits {list(out.shape)} on the "
                f"{stage} tile of {side} px)",
            )
        if tuple(out.shape[2:]) != (want, want):
            raise _breach(
                plugin,
                cfg,
                f"on the {stage} tile of {side} px the engine expects a {want} x {want} output ({why}), "
                f"got {out.shape[2]} x {out.shape[3]} (logits {list(out.shape)})",
            )


def probe_unet_loss(plugin: Plugin, cfg: dict[str, Any]) -> None:
    """A U-Net loss on the engine's logits / target / weights at the scale's training tile and batch."""
    from segbench.engine.contract import canonical_schedule
    from segbench.engine.unet import training_tiles
    from segbench.models import build

    model = build(cfg)
    _, side = training_tiles(model, int(cfg["input"]["tile"]))
    batch = int(canonical_schedule(cfg["schedule"]).get("images_per_batch", 1))
    classes = int(cfg.get("model", {}).get("num_classes", 2))
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, classes, side, side, generator=generator, requires_grad=True)
    target = torch.randint(0, classes, (batch, side, side), generator=generator)
    weights = 1 + 9 * torch.rand(batch, side, side, generator=generator)  # a weight map: w >= 1
    call = (
        f"f(logits [{batch}, {classes}, {side}, {side}] float32, target [{batch}, {side}, {side}] int64, "
        f"weights [{batch}, {side}, {side}] float32)"
    )
    try:
        value = plugin.obj(logits, target, weights)
    except Exception as exc:  # noqa: BLE001
        raise _breach(plugin, cfg, f"{call} raised {_raised(exc, plugin)}") from None
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        raise _breach(
            plugin,
            cfg,
            f"expected a scalar tensor (shape []) from {call}, got {_shape(value)}; reduce it (mean)",
        )
    if not value.is_floating_point() or not torch.isfinite(value):
        raise _breach(plugin, cfg, f"expected a finite floating-point scalar from {call}, got {value!r}")
    if not value.requires_grad:
        raise _breach(plugin, cfg, f"{call} returned a value without a gradient (it must be differentiable)")
    value.backward()
    if logits.grad is None or not torch.isfinite(logits.grad).all():
        raise _breach(plugin, cfg, f"no finite gradient reaches the logits from {call}")


# ----------------------------------------------------------------------------------------------------------
# Mask R-CNN
# ----------------------------------------------------------------------------------------------------------
def _probe_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` for the probe: no weights to load (random init). The class count is the run config's,
    else the dataset entry's, else COCO's (training sets it from the annotation file)."""
    out = copy.deepcopy(cfg)
    out["model"]["pretrained"] = False
    out["model"].pop("pretrained_weights", None)
    return out


def probe_maskrcnn(plugin: Plugin, cfg: dict[str, Any]) -> None:
    """The component at the scale's RoI / mask sizes, then the run's model on one image of its size."""
    from segbench.models.maskrcnn.config import settings_from_config

    probe_cfg = _probe_config(cfg)
    settings_cfg = {**probe_cfg, "model": {k: v for k, v in probe_cfg["model"].items() if k != "plugin"}}
    if plugin.kind == "roi_layer":  # the sizes do not depend on the layer; it may not be registered yet
        settings_cfg["model"]["roi_layer"] = "roi_align"
    s = settings_from_config(settings_cfg)
    if plugin.kind in ("roi_layer", "mask_head", "mask_loss"):
        from segbench.models.maskrcnn.backbones import build_backbone

        bb = build_backbone(s)
        if plugin.kind == "roi_layer":
            _probe_roi_layer(plugin, cfg, s, bb.trunk.out_channels)
        elif plugin.kind == "mask_head" and s.has_mask:
            _probe_mask_head(plugin, cfg, s, bb)
        elif plugin.kind == "mask_loss" and s.has_mask:
            _probe_mask_loss(plugin, cfg, s)
    _probe_maskrcnn_model(plugin, cfg, probe_cfg, s)


def _feature_levels(s: Any) -> list[int]:
    return list(FPN_STRIDES) if s.arch == "fpn" else [16 if s.arch == "c4" else 32]


def _probe_roi_layer(plugin: Plugin, cfg: dict[str, Any], s: Any, channels: int) -> None:
    from segbench.ops import ROI_LAYERS, make_roi_layer

    registered = ROI_LAYERS.get(plugin.name) is plugin.obj  # as the model will call it (options bound)
    fn = make_roi_layer(plugin.name, s.roi_aggregation, s.roi_aligned) if registered else plugin.obj
    side = s.min_size
    rois = torch.tensor(
        [
            [0, 0, 0, side - 1, side - 1],
            [1, side / 4, side / 8, side / 2, side * 0.9],
            [0, 3.0, 5.0, 9.0, 8.0],
        ],
        dtype=torch.float32,
    )
    sizes = sorted({s.box_roi_size, *([s.mask_roi_size] if s.has_mask else [])})
    for stride in _feature_levels(s):
        fmap = -(-side // stride)
        features = torch.rand(2, channels, fmap, fmap, requires_grad=True)
        for size in sizes:
            call = (
                f"f(features [2, {channels}, {fmap}, {fmap}], rois [3, 5], output_size ({size}, {size}), "
                f"spatial_scale 1/{stride}, sampling_ratio {s.sampling_ratio})"
            )
            try:
                out = fn(features, rois, (size, size), 1.0 / stride, s.sampling_ratio)
            except Exception as exc:  # noqa: BLE001
                raise _breach(plugin, cfg, f"{call} raised {_raised(exc, plugin)}") from None
            expected = [3, channels, size, size]
            if not isinstance(out, torch.Tensor) or list(out.shape) != expected:
                raise _breach(
                    plugin, cfg, f"expected [K, C, oh, ow] = {expected} from {call}, got {_shape(out)}"
                )
            if not torch.isfinite(out).all():
                raise _breach(plugin, cfg, f"{call} returned NaN/inf on finite features")


def _probe_mask_head(plugin: Plugin, cfg: dict[str, Any], s: Any, bb: Any) -> None:
    from segbench.models.maskrcnn.losses import get_mask_loss
    from segbench.models.maskrcnn.mask_heads import MaskHeadSpec

    classes = 1 if s.class_agnostic else s.num_classes - 1
    spec = MaskHeadSpec(
        in_channels=bb.trunk.out_channels,
        roi_size=s.mask_roi_size,
        out_channels=get_mask_loss(s.mask_loss).channels(classes),
        conv_dim=s.mask_head_dim,
        fc_dim=s.mask_fc_dim,
        res5=bb.res5,
    )
    described = (
        f"MaskHeadSpec(in_channels={spec.in_channels}, roi_size={spec.roi_size}, "
        f"out_channels={spec.out_channels}, conv_dim={spec.conv_dim}, fc_dim={spec.fc_dim}"
        f"{', res5=<the C4 res5>' if bb.res5 is not None else ''})"
    )
    x = torch.rand(2, spec.in_channels, spec.roi_size, spec.roi_size)
    try:
        head, predictor = plugin.obj(spec)
        out = predictor(head(x))
    except Exception as exc:  # noqa: BLE001
        raise _breach(
            plugin,
            cfg,
            f"factory({described}) -> (head, predictor) on RoI features {list(x.shape)} raised {_raised(exc, plugin)}",
        ) from None
    expected = [2, spec.out_channels, spec.mask_size, spec.mask_size]
    if not isinstance(out, torch.Tensor) or list(out.shape) != expected:
        raise _breach(
            plugin,
            cfg,
            f"expected mask logits [N, out_channels, mask_size, mask_size] = {expected} from factory({described}) "
            f"on RoI features {list(x.shape)}, got {_shape(out)}",
        )


def _probe_mask_loss(plugin: Plugin, cfg: dict[str, Any], s: Any) -> None:
    loss = plugin.obj
    classes = 1 if s.class_agnostic else s.num_classes - 1
    m, n = s.mask_size, 4
    channels = int(loss.channels(classes))
    logits = torch.randn(n, channels, m, m, requires_grad=True)
    targets = (torch.rand(n, m, m) > 0.5).float()
    labels = torch.arange(n) % classes + 1
    call = f"loss(logits [{n}, {channels}, {m}, {m}], targets [{n}, {m}, {m}] float32, classes [{n}] in 1..{classes})"
    try:
        value = loss.loss(logits, targets, labels)
    except Exception as exc:  # noqa: BLE001
        raise _breach(plugin, cfg, f"{call} raised {_raised(exc, plugin)}") from None
    if not isinstance(value, torch.Tensor) or value.dim() != 0 or not torch.isfinite(value):
        raise _breach(
            plugin, cfg, f"expected a finite scalar tensor (shape []) from {call}, got {_shape(value)}"
        )
    try:
        probs = loss.probabilities(logits.detach(), labels)
    except Exception as exc:  # noqa: BLE001
        raise _breach(
            plugin,
            cfg,
            f"probabilities(logits [{n}, {channels}, {m}, {m}], classes) raised {_raised(exc, plugin)}",
        ) from None
    if not isinstance(probs, torch.Tensor) or list(probs.shape) != [n, 1, m, m]:
        raise _breach(
            plugin, cfg, f"expected probabilities [N, 1, m, m] = {[n, 1, m, m]}, got {_shape(probs)}"
        )
    if probs.min() < 0 or probs.max() > 1:
        raise _breach(plugin, cfg, "probabilities(...) must lie in [0, 1]")


def _probe_image(s: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One image of the scale's size with two objects (a small and a large one: FPN routes them to
    different levels)."""
    side = s.min_size
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, side, side, generator=generator)
    boxes = torch.tensor(
        [[side * 0.1, side * 0.1, side * 0.3, side * 0.35], [side * 0.3, side * 0.2, side * 0.95, side * 0.9]]
    )
    masks = torch.zeros(2, side, side, dtype=torch.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
        masks[k, y1:y2, x1:x2] = 1
    target = {"boxes": boxes, "labels": torch.tensor([1, min(2, s.num_classes - 1)]), "masks": masks}
    if s.has_keypoint:
        kps = torch.zeros(2, s.num_keypoints, 3)
        kps[..., 0] = (boxes[:, None, 0] + boxes[:, None, 2]) / 2
        kps[..., 1] = (boxes[:, None, 1] + boxes[:, None, 3]) / 2
        kps[..., 2] = 2
        target["keypoints"] = kps
    return image, target


def _probe_maskrcnn_model(plugin: Plugin, cfg: dict[str, Any], probe_cfg: dict[str, Any], s: Any) -> None:
    """One training step and one inference of the run's model on an image of the scale's size."""
    from segbench.models import build

    side = s.min_size
    where = f"the {cfg['run']} model on one {side} x {side} image"
    try:  # a model plugin is called as models.build would call it; components must be registered
        model = plugin.obj(probe_cfg) if plugin.kind == "model" else build(probe_cfg)
    except Exception as exc:  # noqa: BLE001
        raise _breach(
            plugin, cfg, f"building {where.split(' on ')[0]} raised {_raised(exc, plugin)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise _breach(plugin, cfg, f"expected a torch.nn.Module, got {_shape(model)}")
    image, target = _probe_image(s)
    try:
        losses = model.train()([image], [target])
    except Exception as exc:  # noqa: BLE001
        raise _breach(plugin, cfg, f"a training step of {where} raised {_raised(exc, plugin)}") from None
    if not isinstance(losses, dict) or not losses:
        raise _breach(
            plugin,
            cfg,
            f"expected a dict of scalar losses from a training step of {where}, got {_shape(losses)}",
        )
    for name, value in losses.items():
        if not isinstance(value, torch.Tensor) or value.dim() != 0 or not torch.isfinite(value):
            raise _breach(
                plugin,
                cfg,
                f"loss {name!r} of a training step of {where}: expected a finite scalar, got {_shape(value)}",
            )
    try:
        sum(losses.values()).backward()
        with torch.no_grad():
            outputs = model.eval()([image])
    except Exception as exc:  # noqa: BLE001
        raise _breach(
            plugin, cfg, f"backward or inference of {where} raised {_raised(exc, plugin)}"
        ) from None
    _check_detections(plugin, cfg, s, outputs, where)
    if plugin.kind == "model":
        from segbench.models.maskrcnn import describe_heads

        try:
            describe_heads(model)
        except Exception as exc:  # noqa: BLE001
            raise _breach(
                plugin,
                cfg,
                "evaluation writes heads.json with segbench.models.maskrcnn.describe_heads, which reads "
                "model.settings, model.backbone.out_channels and model.roi_heads (box/mask heads and "
                f"predictors); it raised {_raised(exc, plugin)}",
            ) from None


def _check_detections(plugin: Plugin, cfg: dict[str, Any], s: Any, outputs: Any, where: str) -> None:
    if not isinstance(outputs, list) or len(outputs) != 1 or not isinstance(outputs[0], dict):
        raise _breach(
            plugin, cfg, f"expected inference of {where} to give a list of 1 dict, got {_shape(outputs)}"
        )
    out = outputs[0]
    keys = ["boxes", "labels", "scores", *(["masks"] if s.has_mask else [])]
    missing = [k for k in keys if k not in out]
    if missing:
        raise _breach(plugin, cfg, f"expected inference of {where} to give keys {keys}, missing {missing}")
    n = out["boxes"].shape[0]
    expected = {"boxes": [n, 4], "labels": [n], "scores": [n], "masks": [n, 1, s.min_size, s.min_size]}
    for key in keys:
        if list(out[key].shape) != expected[key]:
            raise _breach(
                plugin,
                cfg,
                f"inference of {where}: expected {key} {expected[key]} (masks: probabilities pasted into the "
                f"image), got {list(out[key].shape)}",
            )
