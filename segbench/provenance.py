"""Provenance written beside every result: commit, config hash, package versions, device, machine signature,
seeds, time."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from segbench.paths import REPO_ROOT

TRACKED_PACKAGES = (
    "segbench",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-image",
    "pycocotools",
    "faster-coco-eval",
    "tifffile",
    "snakemake",
    "dvc",
)


def config_hash(config: Any) -> str:
    """sha256 of the canonical JSON of a resolved config (first 16 hex digits)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


GENERATED_DIRS = ("results", "reports")  # outputs the DAG writes, committed beside the code


def _git(root: Path | None, *args: str) -> str | None:
    """``git args`` in the checkout at ``root`` (default: segbench's): the stripped output, ``None`` when
    the command fails or there is no git."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=root or REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@lru_cache(maxsize=4)
def git_commit(root: Path | None = None) -> str:
    """The commit of the checkout at ``root`` (default: segbench's), with ``+dirty`` when tracked files
    other than results and reports differ (a rerun rewrites the committed tables and pages, which does
    not make the code dirty); ``unknown`` outside git."""
    sha = _git(root, "rev-parse", "HEAD")
    if not sha:
        return "unknown"
    generated = (f":(exclude){out}" for out in GENERATED_DIRS)
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", *generated)
    if dirty is None:
        return "unknown"
    return sha + ("+dirty" if dirty else "")


#: what a run's training executes: the package (its code and its registry). Orchestration (Snakefile,
#: workflow/) only calls the CLI; what it sets for a run (threads) is in the machine signature.
SOURCE_DIR = "segbench"


@lru_cache(maxsize=256)
def source_tree(commit: str, root: Path | None = None) -> str | None:
    """The git tree id of ``segbench/`` at ``commit``: two commits with the same id trained with the same
    code, whatever else (results, docs) they changed. ``None`` where it cannot be known: a ``+dirty`` or
    ``unknown`` commit, one this clone does not hold (shallow), or no git."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit or ""):
        return None
    return _git(root, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}:{SOURCE_DIR}") or None


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    if versions["segbench"] == "absent":  # a working tree on PYTHONPATH, not installed (docs/gpu.md)
        from segbench import __version__

        versions["segbench"] = __version__
    return versions


def device_description() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            return f"{n} x {torch.cuda.get_device_name(0)}"
        threads = torch.get_num_threads()
    except ImportError:
        threads = os.cpu_count() or 1
    return f"cpu ({platform.processor() or platform.machine()}, {threads} threads)"


# -- the machine signature ----------------------------------------------------------------------------
# What decides whether a rerun can be bit for bit: the CPU and its vector extensions (the kernels torch and
# the BLAS pick at run time), torch's dispatch level, the BLAS / oneDNN builds, the thread count (parallel
# reductions sum in another order) and, on CUDA, the GPU, CUDA and cuDNN. The other package versions are
# recorded beside it (``package_versions``); torch's is in it too, since its kernels decide the bits.
CPU_FLAGS = (
    "sse4_2",
    "fma",
    "f16c",
    "avx",
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "sve2",
)
_TORCH_CONFIG_LINE = re.compile(
    r"(Math Kernel Library|MKL-DNN|oneDNN|OpenBLAS|BLIS|LAPACK is|CPU capability)", re.IGNORECASE
)
_TORCH_BUILD_KEYS = ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN")


@lru_cache(maxsize=1)
def _cpu() -> tuple[str, tuple[str, ...]]:
    """(CPU model, its kernel-relevant vector extensions among :data:`CPU_FLAGS`) from /proc/cpuinfo
    (``platform.processor()`` and no flags where it is absent)."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown"
    return " ".join(model.split()), tuple(f for f in CPU_FLAGS if f in flags)


@lru_cache(maxsize=1)
def _torch_libraries() -> dict[str, Any]:
    """torch's CPU capability, the BLAS / LAPACK / oneDNN lines of ``torch.__config__.show()``, and on
    CUDA the GPU, CUDA and cuDNN versions; empty without torch."""
    try:
        import torch
    except ImportError:
        return {}
    out: dict[str, Any] = {"torch": torch.__version__}
    try:
        out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        out["cpu_capability"] = "unknown"
    try:
        shown = torch.__config__.show()
    except (AttributeError, RuntimeError):
        shown = ""
    lines = [" ".join(line.strip(" -").split()) for line in shown.splitlines()]
    out["torch_libraries"] = [
        line
        for line in lines
        if _TORCH_CONFIG_LINE.search(line) and not line.lower().startswith("build settings")
    ]
    build = dict(re.findall(r"\b([A-Z_]+)=([^,\s]+)", shown))
    out["torch_build"] = {key: build[key] for key in _TORCH_BUILD_KEYS if key in build}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
        out["gpu_count"] = torch.cuda.device_count()
        out["cuda"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version()
    return out


@lru_cache(maxsize=1)
def _blas_builds() -> list[str]:
    """The BLAS numpy and scipy were built against (``<package>: <name> <version>``), read from their
    build configuration: the same list whichever libraries happen to be loaded when it is taken (the
    loaded-libraries list differed between a training, which loads scipy's OpenBLAS, and an audit that
    had not yet, so a same-machine audit never compared bit for bit)."""
    import importlib

    out = []
    for name in ("numpy", "scipy"):
        try:
            module = importlib.import_module(name)
            blas = module.show_config(mode="dicts")["Build Dependencies"]["blas"]
        except (ImportError, AttributeError, KeyError, TypeError):
            continue
        out.append(f"{name}: {blas.get('name', '?')} {blas.get('version', '?')}")
    return out


def _threads() -> int:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:
        return os.cpu_count() or 1


def machine_signature() -> dict[str, Any]:
    """The compact signature of this machine for bit-for-bit comparisons: CPU model and vector extensions,
    torch's CPU capability and build (BLAS, oneDNN), the BLAS numpy and scipy were built with, the thread
    count and, on CUDA, GPU / CUDA / cuDNN. Every field is read from something stable (never "what is
    loaded right now"), so a training and a later audit on one machine take the same signature."""
    model, flags = _cpu()
    return {
        "cpu": model,
        "cpu_flags": list(flags),
        "machine": platform.machine(),
        "system": platform.system(),
        **_torch_libraries(),
        "blas_builds": _blas_builds(),
        "threads": _threads(),
    }


def signature_hash(signature: dict[str, Any]) -> str:
    """A stable short hash (12 hex digits) of a machine signature: the same dict gives the same hash."""
    blob = json.dumps(signature, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def machine_signature_hash() -> str:
    return signature_hash(machine_signature())


def provenance(
    config: Any = None,
    *,
    seeds: list[int] | None = None,
    wall_time_s: float | None = None,
    scale: str | None = None,
    dataset: dict[str, Any] | None = None,
    determinism: dict[str, Any] | None = None,
    backbone: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance block every result JSON carries. ``dataset`` (name, sha256, file count of the data
    a run used; :func:`segbench.data.dataset_identity`) is recorded here, never in the config hash; so is
    ``determinism`` (a training's flags and the ops it ran non-deterministically,
    :func:`segbench.determinism.record`), and ``backbone`` (file and sha256 of the miniature-pretrained
    weights a run started from). A method run's plugin (spec, distribution, version, source hash:
    :mod:`segbench.plugin_identity`) is in its config, hence in its hash, and repeated here as ``method``."""
    extra = {} if dataset is None else {"dataset": dataset}
    if isinstance(config, dict) and isinstance(config.get("method"), dict):
        extra["method"] = config["method"]
    if determinism is not None:
        extra["determinism"] = determinism
    if backbone is not None:  # the pretrained weights a run started from (engine/pretrain.py)
        extra["backbone"] = backbone
    machine = machine_signature()
    return {
        **extra,
        "git_commit": git_commit(),
        "config_hash": config_hash(config) if config is not None else None,
        "package_versions": package_versions(),
        "device": device_description(),
        "host": platform.node(),
        "machine_signature": machine,
        "machine_signature_hash": signature_hash(machine),
        "seeds": seeds,
        "scale": scale,
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 3),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
