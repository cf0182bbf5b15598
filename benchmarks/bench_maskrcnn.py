"""CPU speed of segbench's R50-FPN Mask R-CNN against torchvision's ``maskrcnn_resnet50_fpn``.

Both models at the paper's widths, random init (so both use trainable BatchNorm), FCN mask head,
averaging RoIAlign (``segbench.ops`` vs ``torchvision.ops.MultiScaleRoIAlign``), 81 classes, the same
image size and the same RPN / RoI settings (torchvision's defaults; score threshold 0 so that inference
always runs the mask branch on ``detections`` boxes). segbench's model gets torchvision's weights (its
80-channel mask logits drop torchvision's unused background channel) and every step re-seeds the RNG, so
both models see the same proposals and sample the same RoIs: the work is identical, and the script also
prints how far the two models' losses and detections are apart. Timings alternate between the models
and report medians, which keeps a shared machine's noise out of the ratio as far as possible.

    .venv/bin/python benchmarks/bench_maskrcnn.py --size 320 --iters 5 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torchvision.models.detection import maskrcnn_resnet50_fpn

from segbench.models.maskrcnn import build_maskrcnn

NUM_CLASSES = 81


def shared_settings(size: int, detections: int) -> dict:
    """torchvision's defaults, spelled out as segbench model keys."""
    return {
        "rpn_pre_nms_train": 2000, "rpn_post_nms_train": 2000, "rpn_pre_nms_test": 1000,
        "rpn_post_nms_test": 1000, "rois_per_image": 512, "box_score_thresh": 0.0,
        "detections_per_image": detections, "min_size": size, "max_size": size,
    }


def segbench_model(size: int, detections: int) -> nn.Module:
    settings = shared_settings(size, detections)
    cfg = {
        "model": {"backbone": "resnet50", "arch": "fpn", "roi_layer": "roi_align", "roi_aggregation": "avg",
                  "roi_aligned": False, "mask_head": "fcn", "mask_loss": "sigmoid", "class_agnostic": False,
                  "tasks": ["box", "mask"], "pretrained": False, "num_classes": NUM_CLASSES,
                  **{k: v for k, v in settings.items() if k not in ("min_size", "max_size")}},
        "input": {"min_size": size, "max_size": size},
        "dataset": {},
    }
    return build_maskrcnn(cfg)


def torchvision_model(size: int, detections: int) -> nn.Module:
    s = shared_settings(size, detections)
    return maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES, min_size=size, max_size=size,
        rpn_pre_nms_top_n_train=s["rpn_pre_nms_train"], rpn_post_nms_top_n_train=s["rpn_post_nms_train"],
        rpn_pre_nms_top_n_test=s["rpn_pre_nms_test"], rpn_post_nms_top_n_test=s["rpn_post_nms_test"],
        box_batch_size_per_image=s["rois_per_image"], box_score_thresh=0.0, box_detections_per_img=detections,
    )


def copy_torchvision_weights(ours: nn.Module, theirs: nn.Module) -> None:
    """Same weights in both: torchvision's mask logits have a background channel 0 that ours lack."""
    state = theirs.state_dict()
    for suffix in ("weight", "bias"):
        key = f"roi_heads.mask_predictor.mask_fcn_logits.{suffix}"
        state[key] = state[key][1:]
    ours.load_state_dict(state)


def random_batch(size: int, num_objects: int, seed: int) -> tuple[list[torch.Tensor], list[dict]]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, size, size, generator=g)
    xy = torch.rand(num_objects, 2, generator=g) * size * 0.6
    wh = torch.rand(num_objects, 2, generator=g) * size * 0.3 + 16
    boxes = torch.cat([xy, (xy + wh).clamp(max=size - 1)], dim=1)
    masks = torch.zeros(num_objects, size, size, dtype=torch.uint8)
    for mask, box in zip(masks, boxes.round().int(), strict=True):
        mask[box[1]:box[3], box[0]:box[2]] = 1
    labels = torch.randint(1, NUM_CLASSES, (num_objects,), generator=g)
    return [image], [{"boxes": boxes, "labels": labels, "masks": masks}]


def train_step(model: nn.Module, images: list, targets: list) -> Callable[[], dict[str, torch.Tensor]]:
    def step() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)  # the same proposal and RoI sampling in every step and in both models
        model.train()
        model.zero_grad(set_to_none=True)
        losses = model(images, targets)
        sum(losses.values()).backward()
        return losses
    return step


def inference(model: nn.Module, images: list) -> Callable[[], list[dict[str, torch.Tensor]]]:
    @torch.no_grad()
    def run() -> list[dict[str, torch.Tensor]]:
        model.eval()
        return model(images)
    return run


def time_alternating(fns: dict[str, Callable[[], object]], warmup: int, iters: int) -> dict[str, float]:
    """Median ms per call of each function, calls interleaved so that machine load hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(s) for name, s in samples.items()}


def report_agreement(ours: nn.Module, theirs: nn.Module, images: list, targets: list) -> None:
    """How far apart the two models' losses and detections are (same weights, same sampling)."""
    loss_ours, loss_theirs = train_step(ours, images, targets)(), train_step(theirs, images, targets)()
    loss_gap = max(abs(loss_ours[k].item() - loss_theirs[k].item()) for k in loss_theirs)
    (det_ours,), (det_theirs,) = inference(ours, images)(), inference(theirs, images)()
    same_boxes = det_ours["boxes"].shape == det_theirs["boxes"].shape and torch.allclose(
        det_ours["boxes"], det_theirs["boxes"], atol=1e-3)
    mask_gap = float("nan")
    if same_boxes:
        mask_gap = (det_ours["masks"].float() - (det_theirs["masks"] >= 0.5).float()).abs().mean().item()
    print(f"agreement: max |loss difference| {loss_gap:.2e}; same boxes: {same_boxes} "
          f"({len(det_ours['boxes'])} detections); fraction of mask pixels differing: {mask_gap:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320, help="image side in pixels (min_size = max_size)")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--objects", type=int, default=4, help="ground-truth objects in the image")
    parser.add_argument("--detections", type=int, default=100, help="boxes the mask branch sees at test time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours, theirs = segbench_model(args.size, args.detections), torchvision_model(args.size, args.detections)
    copy_torchvision_weights(ours, theirs)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in (("segbench", ours), ("torchvision", theirs))}
    images, targets = random_batch(args.size, args.objects, seed=0)
    report_agreement(ours, theirs, images, targets)
    print(f"R50-FPN Mask R-CNN, 1 image {args.size}x{args.size}, CPU threads {args.threads}, "
          f"{args.iters} timed iterations after {args.warmup} warm-up; params {params}")
    for phase, make in (("train step", lambda m: train_step(m, images, targets)),
                        ("inference", lambda m: inference(m, images))):
        ms = time_alternating({"segbench": make(ours), "torchvision": make(theirs)}, args.warmup, args.iters)
        ratio = ms["segbench"] / ms["torchvision"]
        print(f"{phase:>10}: segbench {ms['segbench']:8.1f} ms   torchvision {ms['torchvision']:8.1f} ms   "
              f"ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
