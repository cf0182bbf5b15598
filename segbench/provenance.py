"""Provenance written beside every result: commit, config hash, package versions, device, seeds, time."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "segbench", "torch", "torchvision", "numpy", "scipy", "scikit-image", "pycocotools",
    "faster-coco-eval", "tifffile", "snakemake", "dvc",
)


def config_hash(config: Any) -> str:
    """sha256 of the canonical JSON of a resolved config (first 16 hex digits)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


GENERATED_DIRS = ("results", "reports")  # outputs the DAG writes, committed beside the code


@lru_cache(maxsize=4)
def git_commit(root: Path | None = None) -> str:
    """The commit of the checkout at ``root`` (default: segbench's), with ``+dirty`` when tracked files
    other than results and reports differ (a rerun rewrites the committed tables and pages, which does
    not make the code dirty); ``unknown`` outside git."""
    root = root or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){out}" for out in GENERATED_DIRS)], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
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


def provenance(config: Any = None, *, seeds: list[int] | None = None,
               wall_time_s: float | None = None, scale: str | None = None,
               dataset: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance block every result JSON carries. ``dataset`` (name, sha256, file count of the data
    a run used; :func:`segbench.data.dataset_identity`) is recorded here, never in the config hash."""
    extra = {} if dataset is None else {"dataset": dataset}
    return {
        **extra,
        "git_commit": git_commit(),
        "config_hash": config_hash(config) if config is not None else None,
        "package_versions": package_versions(),
        "device": device_description(),
        "host": platform.node(),
        "seeds": seeds,
        "scale": scale,
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 3),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
