"""``describe_heads(model)``: the per-RoI heads layer by layer, for a Figure 4 style table."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from segbench.models.maskrcnn.builder import MaskRCNN

_ACTIVATIONS = (nn.ReLU, nn.Flatten)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _shape(output: Any) -> tuple[int, ...] | list[tuple[int, ...]]:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape[1:])
    return [tuple(o.shape[1:]) for o in output]


def _layer_rows(branch: str, part: str, module: nn.Module, x: Any, shared: bool) -> tuple[list[dict], Any]:
    """Run ``module`` on ``x``, one row per direct child with parameters (hooks record output shapes)."""
    rows: list[dict[str, Any]] = []
    children = [(n, c) for n, c in module.named_children() if not isinstance(c, _ACTIVATIONS)] or [
        ("", module)
    ]

    def record(name: str, child: nn.Module):
        def hook(_m: nn.Module, _inputs: Any, output: Any) -> None:
            rows.append(
                {
                    "branch": branch,
                    "layer": f"{part}.{name}".rstrip("."),
                    "type": type(child).__name__,
                    "output_shape": _shape(output),
                    "params": 0 if shared else _params(child),
                    "shared_with_box": shared,
                }
            )

        return hook

    handles = [child.register_forward_hook(record(name, child)) for name, child in children]
    try:
        out = module(x)
    finally:
        for handle in handles:
            handle.remove()
    return rows, out


@torch.no_grad()
def describe_heads(model: MaskRCNN) -> list[dict[str, Any]]:
    """One row per layer of each RoI head on one RoI: branch, layer, type, output shape (C, H, W), params.

    The first row of each branch is its pooled RoI input, the last its predictor's output. Layers the C4 mask branch shares with the box
    head (res5) are listed with ``shared_with_box=True`` and 0 parameters, so the parameter column sums
    to the model's head parameters. Run in eval mode; the model's mode is restored.
    """
    s, heads = model.settings, model.roi_heads
    channels, device = model.backbone.out_channels, next(model.parameters()).device
    branches = [("box", s.box_roi_size, heads.box_head, heads.box_predictor, False)]
    if heads.has_mask():
        branches.append(
            (
                "mask",
                s.mask_roi_size,
                heads.mask_head,
                heads.mask_predictor,
                getattr(heads, "mask_shares_box_head", False),
            )
        )
    if heads.has_keypoint():
        branches.append(
            ("keypoint", s.keypoint_roi_size, heads.keypoint_head, heads.keypoint_predictor, False)
        )
    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    try:
        for branch, roi_size, head, predictor, shared in branches:
            x = torch.zeros(1, channels, roi_size, roi_size, device=device)
            rows.append(
                {
                    "branch": branch,
                    "layer": "roi",
                    "type": "RoI",
                    "output_shape": tuple(x.shape[1:]),
                    "params": 0,
                    "shared_with_box": False,
                }
            )
            head_rows, x = _layer_rows(branch, "head", head, x, shared)
            predictor_rows, logits = _layer_rows(branch, "predictor", predictor, x, False)
            rows += head_rows + predictor_rows
            rows.append(
                {
                    "branch": branch,
                    "layer": "output",
                    "type": type(predictor).__name__,
                    "output_shape": _shape(logits),
                    "params": 0,
                    "shared_with_box": False,
                }
            )
    finally:
        model.train(was_training)
    return rows
