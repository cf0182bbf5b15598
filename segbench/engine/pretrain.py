"""Backbone pretraining in miniature: the CPU scales' stand-in for ImageNet (He et al. 2017, section 3.1).

The paper fine-tunes ImageNet-pretrained backbones; a scale whose ``families.maskrcnn.pretraining`` block is
set (mini) instead pretrains each width-reduced backbone once, as a classifier on the synthetic
:mod:`segbench.data.synthetic.glyphs` corpus (45 classes of shapes x textures with clutter), and every run
of that backbone starts from it. The paper scale has no such block and keeps torchvision's ImageNet weights.

The weights are a DAG artifact, ``<results>/<scale>/pretrained/<backbone>-<spec hash>.pt``, beside a
record ``<same>.json`` (provenance, held-out accuracy, wall time, and the weights' ``weights_sha256``) and
their xz-compressed form ``<same>.pt.xz``. At the mini scale the record and the ``.pt.xz`` are committed
(the ``.pt`` is decompressed from it on first use, :func:`restore_from_stored`, and checked against the
pin): they play the role of the ImageNet files at the paper scale, downloaded
and pinned, not retrained, so a run on another machine starts from the very weights the committed runs
started from (pretraining on another CPU gives other weights: float sums in another order). A pinned file
that is missing or whose sha256 differs is refused by name (:func:`verify_pinned`); only ``segbench
pretrain --force`` makes new ones. Every run records the file and its sha256 in its provenance
(:func:`backbone_identity`). The spec (backbone architecture, corpus, schedule) is part of every run's
config, so changing it changes the file name and the runs' config hashes: the DAG rebuilds both.
"""

from __future__ import annotations

import logging
import lzma
import math
import multiprocessing
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segbench.engine.checkpoint import save_torch
from segbench.engine.seeding import capture_rng_state, restore_rng_state, seed_everything
from segbench.errors import InputError
from segbench.io import dumps, sha256_file, waiting_lock, write_bytes_atomic, write_text_atomic
from segbench.models.maskrcnn.backbones import NORM_LAYERS, ScaledResNet, cardinality
from segbench.optional import require
from segbench.paths import pinned_sha256, stored_weights
from segbench.provenance import config_hash, provenance

log = logging.getLogger(__name__)

# ImageNet statistics: the detection models normalise their inputs with them (models/maskrcnn/builder.py),
# so the backbone is pretrained on inputs normalised the same way.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_trunk(spec: dict[str, Any]) -> ScaledResNet:
    """The backbone's ResNet exactly as :func:`segbench.models.maskrcnn.backbones.build_backbone` makes it
    (same keys), with stride-2 res5 (a classifier's)."""
    if spec["norm"] not in NORM_LAYERS or spec["norm"] == "frozen_bn":
        raise InputError(f"pretraining: norm {spec['norm']!r} cannot be trained; use gn, bn or none")
    groups, width_per_group = cardinality(spec["backbone"])
    return ScaledResNet(
        tuple(spec["blocks"]),
        groups=groups,
        width_per_group=width_per_group,
        width_divisor=spec["width_divisor"],
        norm_layer=NORM_LAYERS[spec["norm"]],
    )


class Classifier(nn.Module):
    """ResNet trunk, global average pooling and a linear layer: the ImageNet classifier's shape."""

    def __init__(self, trunk: ScaledResNet, num_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.layer4[-1].conv3.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(x))))
        x = t.layer4(t.layer3(t.layer2(t.layer1(x))))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W, ImageNet-normalised."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _lr(schedule: dict[str, Any], iteration: int) -> float:
    """Linear warm-up, then cosine decay to 0 (the ImageNet recipes' shape, short)."""
    base, total = float(schedule["lr"]), int(schedule["iterations"])
    warmup = int(schedule.get("warmup_iters", 0))
    if iteration < warmup:
        return base * (iteration + 1) / warmup
    progress = (iteration - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 250) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch):
        logits = model(_normalise(images[start : start + batch]))
        correct += int((logits.argmax(1) == labels[start : start + batch]).sum())
    model.train()
    return correct / max(1, len(images))


def pretrain(spec: dict[str, Any], out_path: Path, *, scale: str | None = None) -> dict[str, Any]:
    """Pretrain the backbone of ``spec`` on the glyphs corpus; write its trunk's state dict to ``out_path``
    and the record (returned) to ``out_path.with_suffix('.json')``."""
    from segbench.data.synthetic import glyphs

    started = time.time()
    schedule, corpus = spec["schedule"], spec["corpus"]
    seed_everything(spec["seed"])
    train_x, train_y = (
        torch.from_numpy(a) for a in glyphs.corpus(corpus, spec["seed"], "train", int(corpus["num_train"]))
    )
    val_x, val_y = (
        torch.from_numpy(a) for a in glyphs.corpus(corpus, spec["seed"], "val", int(corpus["num_val"]))
    )
    corpus_s = time.time() - started
    model = Classifier(build_trunk(spec), len(glyphs.CLASSES))
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=float(schedule["lr"]),
        momentum=float(schedule.get("momentum", 0.9)),
        weight_decay=float(schedule.get("weight_decay", 1e-4)),
        nesterov=True,
    )
    generator = torch.Generator().manual_seed(spec["seed"])
    batch, iterations = int(schedule["batch_size"]), int(schedule["iterations"])
    curve: list[dict[str, float]] = []
    window: list[float] = []
    model.train()
    for iteration in range(iterations):
        index = torch.randint(len(train_x), (batch,), generator=generator)
        x = _normalise(train_x[index])
        flip = torch.rand(batch, generator=generator) < 0.5
        x[flip] = x[flip].flip(-1)
        for group in optimizer.param_groups:
            group["lr"] = _lr(schedule, iteration)
        loss = nn.functional.cross_entropy(model(x), train_y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not torch.isfinite(loss):
            raise RuntimeError(
                f"pretraining {spec['backbone']}: loss is {loss.item()} at iteration {iteration}"
            )
        window.append(loss.item())
        if (iteration + 1) % max(1, iterations // 10) == 0 or iteration + 1 == iterations:
            curve.append({"iteration": iteration + 1, "loss": sum(window) / len(window)})
            log.info(
                "pretrain %s: iteration %d/%d, loss %.3f",
                spec["backbone"],
                iteration + 1,
                iterations,
                curve[-1]["loss"],
            )
            window = []
    top1 = accuracy(model, val_x, val_y)
    seen = min(len(train_x), len(val_x))  # as many training images as held-out ones: the fit's gap
    train_top1 = accuracy(model, train_x[:seen], train_y[:seen])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_torch(
        {
            "spec": spec,
            "spec_hash": config_hash(spec),
            "trunk": model.trunk.state_dict(),
            "head": model.head.state_dict(),
        },
        out_path,
    )
    store_compressed(out_path)
    record = {
        "backbone": spec["backbone"],
        "spec": spec,
        "spec_hash": config_hash(spec),
        "weights": out_path.name,
        "weights_sha256": sha256_file(out_path),
        "classes": len(glyphs.CLASSES),
        "val_top1": round(top1, 4),
        "train_top1": round(train_top1, 4),
        "chance": round(1 / len(glyphs.CLASSES), 4),
        "loss_curve": curve,
        "corpus_seconds": round(corpus_s, 1),
        "provenance": provenance(spec, seeds=[spec["seed"]], wall_time_s=time.time() - started, scale=scale),
    }
    write_text_atomic(out_path.with_suffix(".json"), dumps(record, indent=1) + "\n")
    return record


def store_compressed(path: Path) -> Path:
    """Write the committed form of the weights at ``path`` (:func:`segbench.paths.stored_weights`): the same
    bytes, xz-compressed (preset 9; ResNeXt-101's 2.1 MB file becomes 1.9 MB)."""
    stored = stored_weights(path)
    write_bytes_atomic(stored, lzma.compress(path.read_bytes(), preset=9))
    return stored


def restore_from_stored(path: Path) -> bool:
    """Decompress the committed ``.pt.xz`` into ``path`` where the ``.pt`` is missing (atomically; the pin
    is checked on the result by :func:`verify_pinned`); False where there is nothing to restore from."""
    stored = stored_weights(path)
    if path.exists() or not stored.exists():
        return False
    try:
        data = lzma.decompress(stored.read_bytes())
    except lzma.LZMAError as exc:
        raise InputError(
            f"{stored}: not a readable xz file ({exc}); restore it (git checkout -- '{stored}')"
        ) from None
    write_bytes_atomic(path, data)
    return True


def verify_pinned(path: Path, spec: dict[str, Any]) -> str | None:
    """The sha256 of the weights at ``path`` when its record pins them (decompressed from the committed
    ``.pt.xz`` first where the ``.pt`` is missing), refused by name when both are missing or the weights
    differ; ``None`` when nothing is pinned yet (the file is then made on first use)."""
    pinned = pinned_sha256(path)
    if pinned is None:
        return None
    regenerate = f"segbench pretrain --scale {path.parent.parent.name} --backbone {spec['backbone']} --force"
    stored = stored_weights(path)
    restore_from_stored(path)
    if not path.exists():
        raise InputError(
            f"{stored}: missing; its record pins sha256 {pinned[:12]}. Restore it (git checkout -- '{stored}') "
            f"or, to pretrain new weights (every run from them then differs), run `{regenerate}`"
        )
    actual = sha256_file(path)
    if actual != pinned:
        raise InputError(
            f"{path}: sha256 {actual[:12]} is not the pinned {pinned[:12]} of its record; delete it and "
            f"restore '{stored}' (git checkout -- '{stored}') or, to pin new weights, run `{regenerate}`"
        )
    return actual


def ensure_pretrained(
    spec: dict[str, Any], path: Path, *, scale: str | None = None, force: bool = False
) -> Path:
    """``path``, checked against its pinned sha256, or pretrained first if nothing is pinned and the
    file is not there (under a lock); ``force`` pretrains anew and pins the new weights."""
    with waiting_lock(path.parent, path.stem):  # concurrent runs of one backbone pretrain it once
        if force:
            path.unlink(missing_ok=True)
            stored_weights(path).unlink(missing_ok=True)
        if (force or verify_pinned(path, spec) is None) and not path.exists():
            log.info("pretraining %s into %s (not cached)", spec["backbone"], path)
            # the child needs the glyphs generator's packages: a missing one is one line here, not a
            # traceback in the child (importing touches no random state)
            require("segbench.data.synthetic.glyphs", "pretraining a backbone on synthetic glyphs")
            # Pretrain in a fresh process, so that no state of this one changes its training, with this
            # process's thread count: a spawned process starts with torch's default, and the weights depend
            # on it (float sums in another order). That difference made a run that filled the cache train
            # differently from one that found it full (tests/test_pretrain.py checks they now agree).
            state = capture_rng_state()  # starting a process draws from torch's generator too
            context = multiprocessing.get_context("spawn")
            threads = torch.get_num_threads()
            worker = context.Process(target=_pretrain_quietly, args=(spec, str(path), scale, threads))
            worker.start()
            worker.join()
            restore_rng_state(state)
            if worker.exitcode != 0 or not path.exists():
                raise RuntimeError(
                    f"pretraining {spec['backbone']} into {path} failed (exit code {worker.exitcode})"
                )
    return path


def backbone_identity(path: Path) -> dict[str, Any]:
    """What a run's provenance records of the backbone it started from: file name, sha256, and the
    sha256 its record pins (equal unless the run predates the pin)."""
    return {"file": path.name, "sha256": sha256_file(path), "pinned_sha256": pinned_sha256(path)}


def _pretrain_quietly(spec: dict[str, Any], path: str, scale: str | None, threads: int) -> None:
    torch.set_num_threads(threads)
    pretrain(spec, Path(path), scale=scale)


def load_trunk_state(path: Path, spec: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The trunk state dict in ``path``, refused by name if it was pretrained for another spec."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("spec_hash") != config_hash(spec):
        raise InputError(f"{path}: pretrained for another spec; delete it and rerun to pretrain again")
    return state["trunk"]
