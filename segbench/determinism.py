"""Deterministic where it is cheap and exact, recorded where it is not.

Training (:func:`segbench.engine.seeding.seed_everything`) applies :func:`configure`: torch's deterministic
algorithms with ``warn_only=True`` (an op without a deterministic implementation warns instead of
stopping the run), cuDNN deterministic and not benchmarking (no autotuned, run-to-run varying convolution
algorithms), and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (deterministic cuBLAS). On the CPU every op segbench
trains with is deterministic, so a config and seed give the same bits on the same machine.

On CUDA some kernels accumulate with ``atomicAdd`` and have no deterministic version: torch warns for each
one that runs ("X does not have a deterministic implementation"). :func:`watched` (around
:func:`segbench.engine.contract.train`) catches those warnings, shows each op once, and :func:`record`
lists the ops in the run's record: ``train_done.json``, ``provenance.determinism``. Expected there on CUDA:
``roi_align_backward_kernel`` (averaging RoIAlign's gradient: RoIAlign, RoIWarp-avg, every Mask R-CNN but
the max-RoIAlign / RoIWarp-max / RoIPool variants), ``roi_pool_backward_kernel`` (RoIPool rows) and whatever
else torch flags on that machine; on the CPU the list is empty.

:func:`torchvision_kernels` is the one place the flag is lowered: torchvision's own ``MaskRCNN`` (the
same-budget reference run) calls ``torchvision.ops.roi_align``, which under deterministic mode on a GPU
replaces its kernel by a Python version that does not fit in memory at COCO's mask sizes
(:mod:`segbench.ops.kernels`); its forward pass runs with the flag off there, and the record says so.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeVar

import torch

CUBLAS_WORKSPACE = ":4096:8"
# torch's message for an op without a deterministic implementation (Context::alertNotDeterministic)
NONDETERMINISTIC = re.compile(r"^(?P<op>\S+) does not have a deterministic implementation")
_watchers: list[set[str]] = []  # innermost last: the ops seen by each active :func:`watch`

F = TypeVar("F", bound=Callable[..., Any])


def configure() -> None:
    """The training settings (module docstring); none of them changes a number computed on the CPU."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def settings() -> dict[str, Any]:
    """The determinism flags as they are now."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


@contextlib.contextmanager
def training_settings() -> Iterator[dict[str, Any]]:
    """:func:`configure` for the block (benchmarks measure what training runs); the flags are restored
    after it. Yields :func:`settings` inside."""
    saved = settings()
    try:
        configure()
        yield settings()
    finally:
        torch.use_deterministic_algorithms(saved["deterministic_algorithms"], warn_only=saved["warn_only"])
        torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
        torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
        if saved["cublas_workspace_config"] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def note(op: str) -> None:
    """Record ``op`` (a short description) as run non-deterministically in every active :func:`watch`."""
    for seen in _watchers:
        seen.add(op)


@contextlib.contextmanager
def watch() -> Iterator[set[str]]:
    """Collect, in the yielded set, the ops torch reports as run without a deterministic implementation
    (and :func:`note`'s); each is shown once, every other warning as before."""
    seen: set[str] = set()
    with warnings.catch_warnings():
        warnings.filterwarnings("always", message=NONDETERMINISTIC.pattern, category=UserWarning)
        previous = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            found = NONDETERMINISTIC.match(str(message))
            if found:
                shown = any(found["op"] in s for s in _watchers)
                note(found["op"])
                if shown:
                    return
            previous(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        _watchers.append(seen)
        try:
            yield seen
        finally:
            _watchers.remove(seen)


def watched(fn: F) -> F:
    """Run ``fn`` inside :func:`watch` (the training loop: :func:`record` then reads what it saw)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with watch():
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


def record() -> dict[str, Any]:
    """``provenance.determinism``: :func:`settings` and the sorted ``nondeterministic_ops`` the innermost
    :func:`watch` has seen so far (``None`` outside one: not watched)."""
    ops = sorted(_watchers[-1]) if _watchers else None
    return {**settings(), "nondeterministic_ops": ops}


@contextlib.contextmanager
def torchvision_kernels(device: torch.device, what: str) -> Iterator[None]:
    """On a GPU under deterministic mode: the flag off for the block, so that ``torchvision.ops.roi_align``
    runs its kernel, not its Python fallback; ``what`` is noted (:func:`note`). A no-op on the CPU, where
    torchvision never falls back."""
    if device.type == "cpu" or not torch.are_deterministic_algorithms_enabled():
        yield
        return
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    note(f"{what} (deterministic mode off for torchvision's roi_align kernels)")
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)
