"""How a run starts: the GPUs it needs, the processes it runs as and the command that starts them.

One rule, shared by the workflow (``workflow/rules/common.smk``, ``train.smk``), the CLI and ``segbench plan``:

- :func:`gpus_needed`: a run trains on its schedule's ``gpus`` (the paper's count: 8 for Mask R-CNN, 1 for
  the U-Net and the sliding-window CNN); on none at the CPU scales (no ``gpus``) and at a scale that runs on
  the CPU on purpose (``device: cpu``: the rehearsal, whose ``gpus: 2`` only shapes the schedule).
- :func:`launch_ranks`: a job granted G GPUs (Snakemake caps the request at ``--resources gpu=G``) runs as
  ``min(needed, G)`` processes, one per GPU.
- :func:`launch_prefix`: one process is ``segbench``; N > 1 is ``torchrun --standalone --nproc_per_node=N
  -m segbench`` (one machine; every rank trains, rank 0 writes the records).
- :func:`check_replicas`: ``--gpus N`` with N > 1 in a single process is refused (one line with the
  torchrun command), never silently trained on one GPU.
- :func:`require_cuda`: a run that needs a GPU refuses to start where CUDA is not usable, unless
  ``--device cpu`` says the CPU is meant.

Nothing here imports torch at module load (the Snakefile imports it when it builds the DAG).
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

from segbench.errors import InputError

TORCHRUN = ("torchrun", "--standalone")


def scale_device(scale: str, registry: dict[str, Any] | None = None) -> str | None:
    """The scale's ``device`` (``cpu`` for the rehearsal), ``None`` where the engine chooses."""
    if registry is None:
        from segbench.registry import load_registry

        registry = load_registry()
    return registry["scales"].get(scale, {}).get("device")


def gpus_needed(cfg: dict[str, Any], registry: dict[str, Any] | None = None) -> int:
    """GPUs the run instance ``cfg`` trains on (see the module docstring); 0 = the CPU."""
    if scale_device(str(cfg["scale"]), registry) == "cpu":
        return 0
    return int(cfg.get("schedule", {}).get("gpus") or 0)


def eval_gpus_needed(cfg: dict[str, Any], registry: dict[str, Any] | None = None) -> int:
    """GPUs the run's evaluation needs: one where its training used any (evaluation is one process)."""
    return min(1, gpus_needed(cfg, registry))


def launch_ranks(needed: int, granted: int | None = None) -> int:
    """Processes (one per GPU) a run needing ``needed`` GPUs starts with ``granted`` of them (None: all)."""
    needed = max(0, int(needed))
    return needed if granted is None else min(needed, max(0, int(granted)))


def launch_prefix(gpus: int) -> list[str]:
    """The command that starts ``segbench`` on ``gpus`` GPUs: itself for 0-1, torchrun above."""
    gpus = int(gpus)
    if gpus <= 1:
        return ["segbench"]
    return [*TORCHRUN, f"--nproc_per_node={gpus}", "-m", "segbench"]


class Launcher:
    """``segbench`` or its torchrun launch, formatted from a GPU count in a Snakemake shell string:
    ``{LAUNCH:{resources.gpu}} train ...``. The granted count (the rule's request capped by
    ``--resources gpu``) is known only when Snakemake formats the command, hence a format spec rather than
    a ``params`` entry (a param would also retrain every finished run whose recorded params differ)."""

    def __format__(self, spec: str) -> str:
        text = spec.strip() or "0"
        if not text.isdigit():
            raise ValueError(f"LAUNCH:{spec!r}: expected a GPU count, e.g. {{LAUNCH:{{resources.gpu}}}}")
        return shlex.join(launch_prefix(int(text)))


def torchrun_command(gpus: int, cfg: dict[str, Any] | None = None, argv: list[str] | None = None) -> str:
    """The command that trains this run on ``gpus`` GPUs: this process's own ``segbench train`` arguments
    under torchrun, or (called otherwise) the run's arguments."""
    argv = sys.argv if argv is None else argv
    if len(argv) > 1 and argv[1] == "train":
        args = argv[1:]
    elif cfg is not None:
        args = ["train", "--run", str(cfg["run"]), "--scale", str(cfg["scale"])]
        args += ["--seed", str(cfg.get("seed", 0)), "--gpus", str(gpus)]
    else:
        args = ["train", "...", "--gpus", str(gpus)]
    return shlex.join([*launch_prefix(gpus), *args])


def check_replicas(
    gpus: int, world_size: int, *, distributed: bool, cfg: dict[str, Any] | None = None
) -> None:
    """Refuse GPUs that would sit idle: ``--gpus N`` (N > 1) is one process per GPU under torchrun
    (a single process would train the paper's schedule rescaled to one GPU, 8x as long); a family that
    trains on one device is never started as several processes."""
    name = f"{cfg['run_id']}: " if cfg and "run_id" in cfg else ""
    if world_size > 1 and not distributed:
        family = cfg.get("family", "this family") if cfg else "this family"
        raise InputError(
            f"{name}{family} trains on one device, but torchrun started {world_size} processes; "
            "start it without torchrun, with --gpus 1"
        )
    if gpus <= max(1, world_size):
        return
    if not distributed:
        family = cfg.get("family", "this family") if cfg else "this family"
        raise InputError(f"{name}--gpus {gpus}: {family} trains on one GPU; pass --gpus 1")
    running = "a single process" if world_size == 1 else f"{world_size} processes"
    raise InputError(
        f"{name}--gpus {gpus} in {running}: each GPU needs its own process; launch it as "
        f"`{torchrun_command(gpus, cfg)}`"
    )


def require_cuda(
    cfg: dict[str, Any],
    *,
    device: str | None,
    gpus: int = 0,
    registry: dict[str, Any] | None = None,
    evaluation: bool = False,
) -> None:
    """Refuse to start a run that needs a GPU (:func:`gpus_needed`, or ``--gpus`` >= 1) where CUDA is
    not usable, unless ``device`` is explicit (``--device cpu``: the CPU on purpose). One line: what was
    found and the fix. Call it after the GPU pool has set ``CUDA_VISIBLE_DEVICES``."""
    if device is not None:
        return
    need = eval_gpus_needed(cfg, registry) if evaluation else gpus_needed(cfg, registry)
    need = max(need, int(gpus or 0))
    if need < 1:
        return
    import torch

    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    if count:
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    build = (
        f"torch {torch.__version__} built for CUDA {torch.version.cuda}"
        if torch.version.cuda
        else f"torch {torch.__version__} is a CPU-only build"
    )
    what = "evaluates on a GPU" if evaluation else f"trains on {need} GPU(s)"
    raise InputError(
        f"{cfg.get('run_id', cfg.get('run'))} at scale {cfg.get('scale')} {what}, but CUDA is not usable "
        f"here (torch.cuda.is_available() {available}, {count} device(s), CUDA_VISIBLE_DEVICES="
        f"{'unset' if visible is None else repr(visible)}, {build}); run it where a GPU is granted "
        "(nvidia-smi lists it), or pass --device cpu to run it on the CPU on purpose"
    )
