"""The steps of ``scripts/gpu_check.py``: each is ``name(ctx, io)``, fills ``io.numbers`` (calling
``io.save()`` after each measurement, so a step killed at its timeout keeps what it measured), raises
:class:`Skip` where it does not apply and any other exception where it fails.

``ctx["mode"]`` is ``gpu`` (``cuda``, the paper's sizes) or ``cpu`` (the same steps at tiny sizes: 128 px
images and the smoke-scale networks, U-Net at its smallest valid 188 px tile). "Deterministic" means
training's own settings (:func:`segbench.determinism.training_settings`), so the check measures what
training runs; the ops torch reports as run without a deterministic implementation are recorded.
Timings: first call (lazy initialisation, kernel choice, ``torch.compile``), then peak memory
(:func:`peak_mb`: ``torch.cuda.max_memory_allocated`` on the GPU, the RSS high-water growth of the step's
own process on the CPU), then the median of a few calls. torch is imported inside the steps:
the parent process of the check never loads it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

GIB = 2**30


class Skip(Exception):
    """The step does not apply here; the message says why (one line)."""


class StepIO:
    """A step's numbers; with a ``path``, each :meth:`save` (and the final :meth:`write`) goes to it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.numbers: dict[str, Any] = {}

    def save(self) -> None:
        self.write({"numbers": self.numbers})

    def write(self, message: dict[str, Any]) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(message, default=str))
        tmp.replace(self.path)


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 400 characters."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    line = f"{name}: {text}" if text and name not in ("Skip", "InputError", "RuntimeError") else text or name
    return line[:400]


# -- shared helpers ---------------------------------------------------------------------------------------
def _gpu(ctx: dict[str, Any]) -> bool:
    return ctx["mode"] == "gpu"


def _device(ctx: dict[str, Any]) -> Any:
    import torch

    return torch.device("cuda", 0) if _gpu(ctx) else torch.device("cpu")


def _free(device: Any) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextlib.contextmanager
def deterministic(on: bool, seen: list[str] | None = None) -> Iterator[None]:
    """Training's determinism settings (``on``: :func:`segbench.determinism.training_settings`) or none of
    them (deterministic algorithms and cuDNN deterministic off); the flags before are restored after. The
    ops torch (or segbench) reports as run without a deterministic implementation go into ``seen``."""
    import torch

    from segbench import determinism

    saved = determinism.settings()
    try:
        if on:
            with determinism.training_settings(), determinism.watch() as ops:
                try:
                    yield
                finally:
                    if seen is not None:
                        seen.extend(sorted(op for op in ops if op not in seen))
        else:
            torch.use_deterministic_algorithms(False)
            torch.backends.cudnn.deterministic = False
            yield
    finally:
        torch.use_deterministic_algorithms(saved["deterministic_algorithms"], warn_only=saved["warn_only"])
        torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
        torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]


def memory_method(device: Any) -> str:
    """What :func:`peak_mb` measures on ``device``."""
    if device.type == "cuda":
        return "cuda_max_memory_allocated (steady-state peak of one call minus allocated before it)"
    return "cpu_rss_high_water_growth (this process: VmHWM reset, VmHWM after one call minus VmRSS before)"


def _proc_status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {key}")


def peak_mb(
    fn: Callable[[], object], device: Any, reset: Callable[[], object] | None = None
) -> tuple[float | None, str | None]:
    """Peak MiB of one steady-state call of ``fn`` (call it once before). CUDA: the benchmarks' own
    measure. CPU: the RSS high-water growth of this process (each step has its own process), not the
    benchmarks' forked child, which deadlocks once torch's OpenMP pool has more than one thread."""
    import gc

    from segbench.bench.timing import peak_memory_mb

    if device.type == "cuda":
        return peak_memory_mb(fn, device, reset=reset)
    if reset is not None:
        reset()
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # the high-water mark (VmHWM) restarts from the current RSS
        start = _proc_status_kib("VmRSS")
    except OSError as exc:
        return None, f"RSS high-water mark not available here: {one_line(exc)}"
    fn()
    return max(0, _proc_status_kib("VmHWM") - start) / 1024, None


def measure(
    fn: Callable[[], object], device: Any, *, iters: int, reset: Callable[[], object] | None = None
) -> dict:
    """First-call ms, peak MiB (and its note), median and min ms of ``iters`` further calls."""
    from segbench.bench.timing import sync, time_interleaved

    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    first = (time.perf_counter() - start) * 1e3
    peak, note = peak_mb(fn, device, reset=reset)
    timing = time_interleaved({"f": fn}, warmup=0, iters=iters, device=device)["f"]
    out = {
        "first_call_ms": round(first, 2),
        "median_ms": round(timing["median_ms"], 3),
        "min_ms": round(timing["min_ms"], 3),
        "peak_mb": None if peak is None else round(peak, 1),
    }
    if note:
        out["peak_note"] = note
    return out


def _fail_if(failures: list[str], total: int, what: str) -> None:
    if failures:
        raise RuntimeError(f"{len(failures)} of {total} {what} failed: {'; '.join(failures)[:350]}")


# -- environment ------------------------------------------------------------------------------------------
OPTIONAL_PACKAGES = ("snakemake", "pycocotools", "faster_coco_eval", "jsonschema", "tifffile")


def environment(ctx: dict[str, Any], io: StepIO) -> None:
    """Versions, the device, torchvision's compiled ops, which optional packages import; fails in GPU
    mode when torch sees no usable CUDA device."""
    import torch
    import torchvision

    import segbench

    n = io.numbers
    n.update(
        python=platform.python_version(),
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        segbench_from=str(Path(segbench.__file__).resolve().parent),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        packages={p: importlib.util.find_spec(p) is not None for p in OPTIONAL_PACKAGES},
    )
    try:
        torch.ops.torchvision.roi_align  # noqa: B018 (the compiled op is registered)
        n["torchvision_ops"] = True
    except (AttributeError, RuntimeError) as exc:
        n["torchvision_ops"] = False
        n["torchvision_ops_error"] = one_line(exc)
    n["cuda_available"] = torch.cuda.is_available()
    if not _gpu(ctx):
        n.update(
            type="cpu", name=f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
        )
    elif n["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        n.update(
            type="cuda",
            name=props.name,
            count=torch.cuda.device_count(),
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / GIB, 1),
            bf16=torch.cuda.is_bf16_supported(),
        )
        x = torch.randn(256, 256, device="cuda")
        n["matmul_ok"] = bool(torch.allclose((x @ x).cpu(), x.cpu() @ x.cpu(), rtol=1e-2, atol=1e-2))
    io.save()
    if _gpu(ctx) and not n["cuda_available"]:
        raise RuntimeError(
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable CUDA device "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}): check the driver with "
            "nvidia-smi, or run with --cpu"
        )
    if not n["torchvision_ops"]:
        raise RuntimeError(f"torchvision's compiled ops do not load: {n['torchvision_ops_error']}")
    summary = f"torch {n['torch']}, torchvision {n['torchvision']}, CUDA {n['cuda']}"
    n["summary"] = summary + (f"; {n['name']} x {n.get('count', 1)}" if _gpu(ctx) else "")


def nvidia_smi(ctx: dict[str, Any], io: StepIO) -> None:
    """``nvidia-smi -L`` and the driver version, name and memory of each GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise RuntimeError("nvidia-smi is not on PATH: no NVIDIA driver tools on this machine")
    listing = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20)
    io.numbers["list"] = listing.stdout.strip().splitlines()
    if listing.returncode != 0:
        raise RuntimeError(f"nvidia-smi -L exited {listing.returncode}: {listing.stderr.strip()[:200]}")
    query = subprocess.run(
        [exe, "--query-gpu=name,driver_version,memory.total,mig.mode.current", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    rows = [
        [c.strip() for c in line.split(",")] for line in query.stdout.strip().splitlines() if line.strip()
    ]
    io.numbers["gpus"] = [dict(zip(("name", "driver", "memory", "mig"), r, strict=False)) for r in rows]
    if rows and len(rows[0]) > 1:
        io.numbers["driver"] = rows[0][1]
    io.numbers["summary"] = f"{len(io.numbers['list'])} GPU(s); driver {io.numbers.get('driver')}"


# -- RoI layers -------------------------------------------------------------------------------------------
def _repeatable(step: Callable[[], object], x: Any) -> bool:
    """Whether two calls give bit-identical input gradients."""
    import torch

    step()
    first = x.grad.detach().clone()
    step()
    return bool(torch.equal(first, x.grad))


def roi_ops(ctx: dict[str, Any], io: StepIO) -> None:
    """Forward + backward of each RoI layer (segbench.bench.roi_ops.layers: ours and torchvision's
    roi_align), deterministic off then on: time, peak memory, whether the gradients repeat bit for bit."""
    import torch

    from segbench.bench.roi_ops import layers, make_rois

    dev = _device(ctx)
    n, c, h, w, stride, per_image = (2, 256, 100, 152, 8, 256) if _gpu(ctx) else (2, 16, 16, 16, 8, 32)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=gen).to(dev).requires_grad_(True)
    rois = make_rois(n, per_image, h * stride, w * stride, gen).to(dev)
    grad = torch.randn(rois.shape[0], c, 7, 7, generator=gen).to(dev)
    rows: list[dict[str, Any]] = []
    seen: list[str] = []
    io.numbers.update(
        features=[n, c, h, w],
        stride=stride,
        rois=int(rois.shape[0]),
        output=7,
        sampling_ratio=2,
        memory_method=memory_method(dev),
        rows=rows,
    )
    failures = []
    for det in (False, True):
        with deterministic(det, seen):
            for name, layer in layers(2).items():

                def step(layer: Callable = layer) -> None:
                    x.grad = None
                    layer(x, rois, 1.0 / stride).backward(grad)

                row: dict[str, Any] = {"layer": name, "deterministic": det}
                try:
                    row.update(measure(step, dev, iters=5 if _gpu(ctx) else 2))
                    row["repeatable_grad"] = _repeatable(step, x)
                except Exception as exc:
                    row["error"] = one_line(exc)
                    failures.append(f"{name} (deterministic={det}): {row['error']}")
                    _free(dev)
                rows.append(row)
                io.numbers["nondeterministic_ops"] = seen
                io.save()
    base = {r["deterministic"]: r.get("median_ms") for r in rows if r["layer"].startswith("torchvision")}
    worst = max((r for r in rows if r.get("median_ms")), key=lambda r: r["median_ms"], default=None)
    io.numbers["summary"] = (
        f"torchvision roi_align fwd+bwd {base.get(False)} ms (deterministic: {base.get(True)} ms); slowest "
        + (f"{worst['layer']} det={worst['deterministic']} {worst['median_ms']} ms" if worst else "none")
        + f"; not repeatable: {sum(r.get('repeatable_grad') is False for r in rows)} of {len(rows)}"
    )
    _fail_if(failures, len(rows), "layer runs")


# -- mask targets -----------------------------------------------------------------------------------------
#: Where a bounded-memory mask-target function (the signature of torchvision's ``project_masks_on_boxes``:
#: ``(gt_masks [G, H, W], boxes [P, 4], matched_idxs [P], M) -> [P, M, M]``) may live, in order.
MASK_TARGET_CANDIDATES = (
    ("segbench.ops", "mask_targets"),
    ("segbench.ops", "project_masks_on_boxes"),
    ("segbench.ops.mask_targets", "mask_targets"),
    ("segbench.ops.mask_targets", "project_masks_on_boxes"),
    ("segbench.models.maskrcnn.mask_targets", "mask_targets"),
    ("segbench.models.maskrcnn.mask_targets", "project_masks_on_boxes"),
)
TORCHVISION_MASK_TARGETS = "torchvision.models.detection.roi_heads.project_masks_on_boxes"


def mask_target_function() -> tuple[Callable, str, str | None]:
    """``(function, its dotted name, note)``: segbench's mask-target function, else torchvision's."""
    for module, attr in MASK_TARGET_CANDIDATES:
        try:
            fn = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            continue
        if callable(fn):
            return fn, f"{module}.{attr}", None
    from torchvision.models.detection.roi_heads import project_masks_on_boxes

    return (
        project_masks_on_boxes,
        TORCHVISION_MASK_TARGETS,
        "no segbench mask-target function found (looked for "
        + ", ".join(f"{m}.{a}" for m, a in MASK_TARGET_CANDIDATES)
        + "); torchvision's measured instead",
    )


def _mask_inputs(gpu: bool, device: Any) -> tuple[list[tuple[Any, Any, Any]], dict[str, Any]]:
    """Two images' ground-truth masks (random ellipses), positive boxes around them, matched indices."""
    import torch

    height, width, objects, positives = (800, 1067, 16, 128) if gpu else (200, 267, 8, 32)
    g = torch.Generator().manual_seed(0)
    images = []
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for _ in range(2):
        centre = torch.rand(objects, 2, generator=g) * torch.tensor([width, height])
        radius = 8 + torch.rand(objects, 2, generator=g) * torch.tensor([width, height]) * 0.2
        masks = (
            ((xx[None] - centre[:, 0, None, None]) / radius[:, 0, None, None]) ** 2
            + ((yy[None] - centre[:, 1, None, None]) / radius[:, 1, None, None]) ** 2
        ) <= 1
        gt_boxes = torch.cat([centre - radius, centre + radius], dim=1)
        idxs = torch.randint(0, objects, (positives,), generator=g)
        jitter = (torch.rand(positives, 4, generator=g) - 0.5) * 0.2 * radius[idxs].repeat(1, 2)
        boxes = gt_boxes[idxs] + jitter
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height - 1)
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        images.append((masks.to(torch.uint8).to(device), boxes.to(device), idxs.to(device)))
    shape = {
        "mask_size": [height, width],
        "objects_per_image": objects,
        "rois_per_image": positives,
        "images": 2,
    }
    return images, shape


def mask_targets(ctx: dict[str, Any], io: StepIO) -> None:
    """Mask targets (M = 28) of two images of COCO-sized masks (800 x 1067 on the GPU), deterministic off
    then on: time, peak memory, agreement with torchvision's kernel."""
    import torch

    dev = _device(ctx)
    fn, name, note = mask_target_function()
    images, shape = _mask_inputs(_gpu(ctx), dev)
    rows: list[dict[str, Any]] = []
    seen: list[str] = []
    io.numbers.update(function=name, M=28, memory_method=memory_method(dev), rows=rows, **shape)
    if note:
        io.numbers["note"] = note

    def targets(f: Callable = fn) -> Any:
        return torch.cat([f(m, b, i, 28) for m, b, i in images])

    from torchvision.models.detection.roi_heads import project_masks_on_boxes

    with deterministic(False):
        reference = targets(project_masks_on_boxes)  # torchvision's kernel (no fallback without the flag)
    failures = []
    for det in (False, True):
        row: dict[str, Any] = {"deterministic": det}
        with deterministic(det, seen):
            try:
                row.update(measure(targets, dev, iters=3))
                got = targets()
                row["max_abs_diff_vs_torchvision_kernel"] = float(
                    (got.float() - reference.float()).abs().max()
                )
                row["pixels_differing_at_0_5"] = float(((got >= 0.5) != (reference >= 0.5)).float().mean())
            except Exception as exc:
                row["error"] = one_line(exc)
                failures.append(f"deterministic={det}: {row['error']}")
                _free(dev)
        rows.append(row)
        io.numbers["nondeterministic_ops"] = seen
        io.save()
    peaks = [r.get("peak_mb") for r in rows]
    io.numbers["under_1_gib"] = all(p is not None and p < 1024 for p in peaks)
    io.numbers["summary"] = (
        f"{name.rsplit('.', 1)[-1]} on {shape['mask_size'][0]}x{shape['mask_size'][1]}: "
        + "; ".join(f"det={r['deterministic']} {r.get('median_ms')} ms, {r.get('peak_mb')} MiB" for r in rows)
        + (" (torchvision's: no segbench function)" if note else "")
    )
    _fail_if(failures, len(rows), "mask-target runs")


# -- Mask R-CNN training steps ----------------------------------------------------------------------------
def _maskrcnn_config(run: str, gpu: bool) -> tuple[dict[str, Any], tuple[int, int]]:
    """The run's config: on the GPU the rehearsal scale's (the paper's networks and RPN/RoI counts, with
    stand-in ImageNet files, so frozen BatchNorm as training has it) at 800 x 1333; on the CPU the smoke
    scale's networks at 128 x 128 with random weights (trainable BatchNorm, as the smoke scale trains)."""
    from segbench.registry import resolve_run

    if gpu:
        cfg, size = resolve_run(run, "rehearsal"), (800, 1333)
    else:
        cfg, size = resolve_run(run, "smoke"), (128, 128)
        cfg.pop("pretraining", None)
        cfg["model"].update(pretrained=False, norm="bn")
    cfg["input"] = {**cfg["input"], "min_size": min(size), "max_size": max(size)}
    return cfg, size


def _train_step(model: Any, images: list, targets: list, amp: bool, device: Any, last: dict) -> Callable:
    """Forward + backward of the summed losses as the training contract runs them (autocast: float16 with
    a gradient scaler on CUDA, bfloat16 on the CPU); no optimizer update, so every call does the same work."""
    import torch

    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")

    def step() -> None:
        torch.manual_seed(0)  # the same proposals and RoI samples in every call
        model.train()
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=amp):
            losses = model(images, targets)
        loss = sum(losses.values())
        scaler.scale(loss).backward()
        last["loss"] = float(loss.detach())

    return step


def _maskrcnn_rows(
    models: dict[str, tuple[Any, tuple[bool, ...]]],
    batch: tuple[list, list],
    device: Any,
    io: StepIO,
    iters: int,
) -> list[str]:
    """One row per model x precision x deterministic setting; returns the failures."""
    import math

    rows = io.numbers.setdefault("rows", [])
    seen = io.numbers.setdefault("nondeterministic_ops", [])
    failures = []
    images, targets = batch
    for amp in (False, True):
        for name, (model, dets) in models.items():
            for det in dets:
                row: dict[str, Any] = {
                    "model": name,
                    "precision": "amp" if amp else "fp32",
                    "deterministic": det,
                }
                last: dict[str, float] = {}
                step = _train_step(model, images, targets, amp, device, last)
                try:
                    with deterministic(det, seen):
                        m = measure(
                            step,
                            device,
                            iters=iters,
                            reset=lambda model=model: model.zero_grad(set_to_none=True),
                        )
                    row.update(m, img_s=round(len(images) / (m["median_ms"] / 1e3), 3), loss=last.get("loss"))
                    if not math.isfinite(last.get("loss", float("nan"))):
                        raise RuntimeError(f"non-finite loss {last.get('loss')}")
                except Exception as exc:
                    row["error"] = one_line(exc)
                    failures.append(f"{name} {row['precision']} det={det}: {row['error']}")
                    _free(device)
                rows.append(row)
                io.save()
    return failures


def _maskrcnn_summary(rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        if "img_s" in r:
            mem = f", {r['peak_mb']:.0f} MiB" if r.get("peak_mb") is not None else ""
            parts.append(
                f"{r['model']} {r['precision']}{' det' if r['deterministic'] else ''} {r['img_s']:.3g} img/s{mem}"
            )
    return "; ".join(parts) or "no row measured"


def torchvision_maskrcnn(s: Any, size: tuple[int, int]) -> tuple[Any, str]:
    """torchvision's ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` (trainable BatchNorm,
    random weights) with the run's class count, input size and RPN / RoI sample counts."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    kwargs = {
        "num_classes": s.num_classes,
        "min_size": min(size),
        "max_size": max(size),
        "rpn_pre_nms_top_n_train": s.rpn_pre_nms_train,
        "rpn_post_nms_top_n_train": s.rpn_post_nms_train,
        "rpn_batch_size_per_image": s.rpn_batch_size,
        "rpn_positive_fraction": s.rpn_positive_fraction,
        "box_batch_size_per_image": s.rois_per_image,
        "box_positive_fraction": s.positive_fraction,
    }
    shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, **kwargs), (
        f"maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, {shown})"
    )


def _maskrcnn_step(ctx: dict[str, Any], io: StepIO, run: str, *, reference: bool) -> None:
    """A training step of registry run ``run``, 2 images; with ``reference``, torchvision's model beside:
    ``maskrcnn_resnet50_fpn`` on the GPU, its classes on the smoke scale's reduced widths on the CPU."""
    import torch

    from segbench.bench.maskrcnn import random_batch, torchvision_reference, variant
    from segbench.engine.imagenet import imagenet_source
    from segbench.models.maskrcnn import build_maskrcnn, settings_from_config

    gpu, dev = _gpu(ctx), _device(ctx)
    cfg, size = _maskrcnn_config(run, gpu)
    s = settings_from_config(cfg)
    torch.manual_seed(0)
    with imagenet_source(cfg, Path(ctx["scratch"]) / "data"):  # rehearsal: the stand-in ImageNet files
        ours = build_maskrcnn(cfg).to(dev)
    io.numbers.update(
        run=run,
        scale="rehearsal" if gpu else "smoke",
        variant=variant(s),
        size=f"{size[0]}x{size[1]}",
        images=2,
        train_step="forward + backward of the summed losses (no optimizer update)",
        memory_method=memory_method(dev),
        segbench_init=getattr(ours, "segbench_init", None),
        params={"segbench": sum(p.numel() for p in ours.parameters())},
    )
    # deterministic: as training runs it, and (beside torchvision's reference) without, for the difference
    models: dict[str, tuple[Any, tuple[bool, ...]]] = {
        "segbench": (ours, (True, False) if reference else (True,))
    }
    if reference:
        torch.manual_seed(0)
        if gpu:
            theirs, how = torchvision_maskrcnn(s, size)
        else:  # torchvision's MaskRCNN class and heads on the same width-reduced ResNet (the benchmark's)
            theirs, _, how = torchvision_reference(s)
        models["torchvision"] = (theirs.to(dev), (False,))
        io.numbers["reference"] = how
        io.numbers["params"]["torchvision"] = sum(p.numel() for p in theirs.parameters())
    io.save()
    batch = random_batch(size, 2, 8 if gpu else 4, s.num_classes, s.tasks, s.num_keypoints, dev)
    failures = _maskrcnn_rows(models, batch, dev, io, iters=3 if gpu else 2)
    io.numbers["summary"] = _maskrcnn_summary(io.numbers["rows"])
    _fail_if(failures, len(io.numbers["rows"]), "training steps")


def maskrcnn_r50_fpn(ctx: dict[str, Any], io: StepIO) -> None:
    """R50-FPN, 2 images at 800 x 1333, fp32 and AMP, beside torchvision's maskrcnn_resnet50_fpn."""
    _maskrcnn_step(ctx, io, "r50_fpn", reference=True)


def maskrcnn_x101_fpn(ctx: dict[str, Any], io: StepIO) -> None:
    """ResNeXt-101 32x8d FPN, 2 images, fp32 and AMP."""
    _maskrcnn_step(ctx, io, "x101_fpn", reference=False)


def maskrcnn_r50_c4_roialign_max(ctx: dict[str, Any], io: StepIO) -> None:
    """R50-C4 with max RoIAlign (Table 2c), 2 images, fp32 and AMP."""
    _maskrcnn_step(ctx, io, "r50_c4_roialign_max", reference=False)


# -- U-Net ------------------------------------------------------------------------------------------------
def unet_572(ctx: dict[str, Any], io: StepIO) -> None:
    """The paper's U-Net (64 base channels) on 572 px tiles, batch 1: training (forward + backward of the
    cross-entropy) and inference tiles/s, fp32 and AMP, deterministic as training. CPU: 4 channels, 188 px."""
    import torch
    from torch.nn import functional as F

    from segbench.models.unet import UNet

    dev = _device(ctx)
    tile, base = (572, 64) if _gpu(ctx) else (188, 4)
    torch.manual_seed(0)
    model = UNet(in_channels=1, num_classes=2, base_channels=base).to(dev)
    side = model.output_size(tile)
    x = torch.randn(1, 1, tile, tile, device=dev)
    labels = torch.randint(0, 2, (1, side, side), device=dev)
    rows: list[dict[str, Any]] = []
    seen: list[str] = []
    io.numbers.update(
        tile=tile,
        output=side,
        base_channels=base,
        params=sum(p.numel() for p in model.parameters()),
        memory_method=memory_method(dev),
        rows=rows,
    )
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda")

    def train(amp: bool) -> Callable[[], None]:
        def step() -> None:
            model.train()
            model.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, enabled=amp):
                loss = F.cross_entropy(model(x), labels)
            (scaler.scale(loss) if amp else loss).backward()

        return step

    def infer(amp: bool) -> Callable[[], None]:
        @torch.inference_mode()
        def step() -> None:
            model.eval()
            with torch.autocast(dev.type, enabled=amp):
                model(x)

        return step

    failures = []
    for amp in (False, True):
        for phase, make in (("train", train), ("infer", infer)):
            row: dict[str, Any] = {
                "phase": phase,
                "precision": "amp" if amp else "fp32",
                "deterministic": True,
            }
            try:
                with deterministic(True, seen):
                    m = measure(make(amp), dev, iters=5 if _gpu(ctx) else 3)
                row.update(m, tiles_per_s=round(1e3 / m["median_ms"], 3))
            except Exception as exc:
                row["error"] = one_line(exc)
                failures.append(f"{phase} {row['precision']}: {row['error']}")
                _free(dev)
            rows.append(row)
            io.numbers["nondeterministic_ops"] = seen
            io.save()
    io.numbers["summary"] = f"{tile} px: " + "; ".join(
        f"{r['phase']} {r['precision']} {r['tiles_per_s']:.3g} tiles/s" for r in rows if "tiles_per_s" in r
    )
    _fail_if(failures, len(rows), "U-Net runs")


def unet_isbi_fold(ctx: dict[str, Any], io: StepIO) -> None:
    """A short U-Net run on one fold of the real ISBI 2012 stack, trained and evaluated by the engine. GPU:
    the paper scale's unet_isbi (64 channels, 572 px tiles, held-out slices 24-29) for 200 iterations; CPU:
    real_cpu fold 0 for 2 iterations at 4 channels, 188 px tiles, no test-time versions. Skipped without
    the data."""
    from segbench.data import dataset_dir
    from segbench.engine.runner import evaluate_run, train_run
    from segbench.paths import data_root
    from segbench.registry import resolve_run

    root = data_root(ctx.get("data_root"))
    folder = dataset_dir("isbi2012", root)
    missing = [f for f in ("train-volume.tif", "train-labels.tif") if not (folder / f).is_file()]
    if missing:
        raise Skip(
            f"no real ISBI 2012 stack in {folder} ({', '.join(missing)} missing): set SEGBENCH_DATA or "
            "--data-root to a data root with isbi2012/ (on a lent GPU machine: carry data/isbi2012)"
        )
    gpu = _gpu(ctx)
    if gpu:
        cfg, iters = resolve_run("unet_isbi", "paper", 0), 200
    else:
        cfg, iters = resolve_run("unet_isbi", "real_cpu", 0), 2
        cfg["input"]["tile"] = 188
        cfg["model"].update(base_channels=4, test_time_rotations=0)
    cfg["schedule"].update(iterations=iters, checkpoint_every=iters)
    cfg["schedule"]["lr_decay_at"] = [i for i in cfg["schedule"].get("lr_decay_at", []) if i < iters]
    run_dir = Path(ctx["scratch"]) / "isbi" / "runs" / cfg["run_id"]
    device = "cuda" if gpu else "cpu"
    io.numbers.update(
        run=cfg["run"],
        scale=cfg["scale"],
        fold=cfg.get("split", {"fold": "held-out slices 24-29"}),
        iterations=iters,
        tile=cfg["input"]["tile"],
        base_channels=cfg["model"].get("base_channels", 64),
        data=str(folder),
    )
    start = time.perf_counter()
    trained = train_run(cfg, run_dir, root, device=device, gpus=1 if gpu else 0)
    train_s = time.perf_counter() - start
    io.numbers.update(train_s=round(train_s, 2), device=trained["summary"].get("device"))
    io.save()
    start = time.perf_counter()
    metrics = evaluate_run(cfg, run_dir, root, device=device)["metrics"]
    io.numbers.update(evaluate_s=round(time.perf_counter() - start, 2), metrics=_scalars(metrics))
    shown = ", ".join(
        f"{k.rsplit('.', 1)[-1]} {v:.4g}"
        for k, v in io.numbers["metrics"].items()
        if k.endswith(("warping_error", "rand_error", "pixel_error"))
    )
    io.numbers["summary"] = (
        f"{iters} iterations in {train_s:.1f} s on {io.numbers['device']}, evaluated in "
        f"{io.numbers['evaluate_s']:.1f} s: {shown}"
    )
    if gpu and not str(io.numbers["device"]).startswith("cuda"):
        raise RuntimeError(f"trained on {io.numbers['device']}, not on the GPU")


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a metrics record, one level of groups flattened (``isbi.rand_error``)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            if isinstance(v, int | float) and not isinstance(v, bool):
                flat[key if sub is None else f"{key}.{sub}"] = v
    return flat


# -- the DAG ----------------------------------------------------------------------------------------------
TABLE2 = ("table2a", "table2b", "table2c", "table2d", "table2e")


def _segbench_on_path(work: Path, env: dict[str, str]) -> str | None:
    """Snakemake's jobs call ``segbench``: where no such command is beside this Python or on PATH (a tree
    used with PYTHONPATH=. and no install), put a shim that runs ``python -m segbench`` first on PATH."""
    path = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    if shutil.which("segbench", path=path):
        return None
    shim = work / "bin" / "segbench"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m segbench "$@"\n')
    shim.chmod(0o755)
    env["PATH"] = os.pathsep.join([str(shim.parent), env.get("PATH", "")])
    return f"no segbench command beside {sys.executable}: a `python -m segbench` shim was put on PATH"


def _trim(path: Path, lines: int = 300) -> None:
    text = path.read_text(errors="replace").splitlines()
    if len(text) > lines:
        path.write_text("\n".join([f"[... {len(text) - lines} lines cut ...]", *text[-lines:]]) + "\n")


def dag_table2_smoke(ctx: dict[str, Any], io: StepIO) -> None:
    """``snakemake --cores all reproduce_table2 --config scale=smoke`` into a scratch results, reports and
    data root; checks the five tables and, on the GPU, that every run trained on CUDA."""
    if importlib.util.find_spec("snakemake") is None:
        raise RuntimeError(f"snakemake is not installed for {sys.executable}: the DAG cannot run here")
    work = Path(ctx["scratch"]) / "dag"
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ctx["repo"], env.get("PYTHONPATH", "")) if p)
    note = _segbench_on_path(work, env)
    results, reports, data = work / "results", work / "reports", work / "data"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "all",
        "reproduce_table2",
        "--config",
        "scale=smoke",
        f"results={results}",
        f"reports={reports}",
        f"data_root={data}",
    ]
    log = Path(ctx["out"]) / "gpu_check_logs" / "dag_table2_smoke.snakemake.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    io.numbers.update(command=" ".join(cmd[1:]), log=str(log.name), **({"note": note} if note else {}))
    start = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, cwd=ctx["repo"], env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    io.numbers.update(snakemake_s=round(time.perf_counter() - start, 1), returncode=rc)
    _trim(log)
    devices: dict[str, int] = {}
    for done in sorted((results / "smoke" / "runs").glob("*/train_done.json")):
        device = str(json.loads(done.read_text()).get("summary", {}).get("device"))
        devices[device] = devices.get(device, 0) + 1
    tables = {t: (results / "smoke" / "tables" / f"{t}.json").is_file() for t in TABLE2}
    io.numbers.update(runs_trained=sum(devices.values()), devices=devices, tables=tables)
    io.numbers["summary"] = (
        f"{sum(tables.values())}/{len(tables)} tables, {sum(devices.values())} runs in "
        f"{io.numbers['snakemake_s']:.0f} s on {', '.join(devices) or 'nothing'}"
    )
    io.save()
    if rc != 0:
        last = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"snakemake exited {rc} (log {log.name}): {last[0][:200]}")
    if not all(tables.values()):
        raise RuntimeError(f"missing tables: {', '.join(t for t, ok in tables.items() if not ok)}")
    if _gpu(ctx) and any(not d.startswith("cuda") for d in devices):
        raise RuntimeError(f"runs trained off the GPU: {devices}")
