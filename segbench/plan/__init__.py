"""What a target costs before anything is downloaded or trained: runs, schedules, data and GPU time.

``plan(target, scale, gpus=N, gpu_type="h100")`` lists every run instance a ``snakemake reproduce_TARGET``
trains (the registry's tables, :func:`segbench.status.assembled_with`), each with the schedule the engine
will use on ``N`` GPUs (iterations, images per batch, images seen), the dataset it needs (and that
dataset's download size from datasets.yaml), and its estimated GPU-hours and wall time.

Speeds come from the benchmark records ``results/bench/<suite>-<device>.json`` (``segbench bench``):

* A GPU record of the requested type (``device: cuda`` and the type in its ``device_name``) is used as it
  is, scaled only from the benchmark's input size to the run's.
* Otherwise the CPU record is scaled by one factor per GPU type, ``X = anchor / cpu``: ``anchor`` is a
  published training speed of ResNet-50-FPN Mask R-CNN at the paper's input size on that GPU
  (:data:`GPU_TYPES`, each with its derivation), ``cpu`` the CPU record's own ``r50_fpn`` training speed
  converted to that input size (cost proportional to pixels). Every CPU figure (each Mask R-CNN run, the
  U-Net training step) is multiplied by the same ``X``, so the runs keep the relative costs measured on
  the CPU. Each row of the plan names its record and, for a CPU record, ``X`` and why.

Runs the benchmark did not measure take the nearest measured run (same architecture, then same tasks)
times a backbone cost ratio (:attr:`segbench.models.backbone_specs.BackboneSpec.cost`). Only training is estimated; evaluation (5k images per
Mask R-CNN run, about a minute on a GPU) is not included. Wall time assumes linear data-parallel scaling
over the processes the workflow launches (:mod:`segbench.launch`, the rule ``snakemake --resources gpu=N``
applies): a Mask R-CNN run as ``torchrun --nproc_per_node=min(8, N)``, one GPU per process (2 images per GPU,
the paper's schedule rescaled by the linear scaling rule); multi-GPU runs share the ``N`` GPUs one after
another (two at a time on 16), and single-GPU runs (U-Net) pack onto them.
"""

from __future__ import annotations

from segbench.plan.cost import (
    GPU_TYPES,
    PAPER_PIXELS,
    BenchRecord,
    GpuType,
    Plan,
    RunPlan,
    load_bench,
    plan,
    train_pixels,
)
from segbench.plan.report import estimate_line, format_plan, hours

__all__ = [
    "GPU_TYPES",
    "PAPER_PIXELS",
    "BenchRecord",
    "GpuType",
    "Plan",
    "RunPlan",
    "estimate_line",
    "format_plan",
    "hours",
    "load_bench",
    "plan",
    "train_pixels",
]
