"""Timing and peak memory shared by the benchmark suites.

Timing (:func:`time_interleaved`): after ``warmup`` rounds, each round calls every function once, in turn,
and records its wall time (``time.perf_counter``; on CUDA after ``torch.cuda.synchronize`` before and
after the call, so queued kernels are counted where they run). The median per function is reported, with
the minimum and the number of samples. Interleaving makes a shared machine's load hit all contenders alike,
so their ratio is steadier than that of back-to-back runs.

Peak memory (:func:`peak_memory_mb`), in MiB: the steady-state peak of one call of a function over what
was resident before it. The function is called once to warm up (lazy initialisation, code pages, kernel
choice), ``reset`` runs (e.g. dropping gradients), then the measured call:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``torch.cuda.reset_peak_memory_stats``, minus
  ``torch.cuda.memory_allocated`` just before the measured call: the call's own tensors (activations,
  gradients, workspaces) as PyTorch's caching allocator counts them, without the weights resident before
  it. Method ``cuda_max_memory_allocated``.
- CPU: peak RSS growth, not tracemalloc (which does not see tensor memory). Both calls run in a child
  process forked for the measurement (Linux), so that nothing the parent ran before matters; before the
  measured call the child returns its allocator's free memory to the system (glibc ``malloc_trim(0)``) and
  resets its high-water mark (``/proc/self/clear_refs``); the peak is
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the call minus the RSS before it. RSS counts every
  page the call touches (tensors, allocator overhead, thread stacks), so it is an upper bound on the tensor
  memory. Where ``clear_refs`` cannot be written, the warm-up call is skipped and the first call measured
  (its growth then includes code pages and one-time initialisation; the result's note says so). Method
  ``cpu_peak_rss_growth_fork``. Where ``fork`` or ``/proc`` is missing, the value is ``None`` with the
  reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from segbench.errors import InputError

MIB = 2**20
CHILD_TIMEOUT_S = 1800.0


def sync(device: Any) -> None:
    """Wait for the device's queued work (CUDA); a no-op on CPU."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def spread(samples: list[float], factor: float = 1.0) -> dict[str, Any]:
    """``{"min", "median", "max", "n", "samples"}`` of ``samples``, each value times ``factor``."""
    if not samples:
        raise ValueError("spread of no samples")
    scaled = [s * factor for s in samples]
    return {
        "min": min(scaled),
        "median": statistics.median(scaled),
        "max": max(scaled),
        "n": len(scaled),
        "samples": scaled,
    }


def timing_entry(
    what: str, impl: str, samples: list[float], *, unit: str = "ms", reference: bool = False
) -> dict[str, Any]:
    """One timing of a bench row as recorded under its ``timings``: what was timed (``"r50_fpn: train step
    (ms/step)"``), by which implementation, whether that is the reference measured beside ours, and the
    :func:`spread` of the samples in ``unit``."""
    return {"what": what, "impl": impl, "reference": reference, "unit": unit, **spread(samples)}


def time_interleaved(
    fns: dict[str, Callable[[], object]], *, warmup: int, iters: int, device: Any = "cpu"
) -> dict[str, dict[str, Any]]:
    """``{name: {"median_ms", "min_ms", "max_ms", "n", "samples_ms"}}`` of each function, calls interleaved
    (see the module doc)."""
    if iters < 1:
        raise ValueError("iters must be >= 1")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {
        name: {
            "median_ms": statistics.median(s),
            "min_ms": min(s),
            "max_ms": max(s),
            "n": len(s),
            "samples_ms": s,
        }
        for name, s in samples.items()
    }


def memory_method(device: Any) -> str:
    """What :func:`peak_memory_mb` measures on ``device`` (recorded in every result that reports memory)."""
    if str(device).startswith("cuda"):
        return "cuda_max_memory_allocated (steady-state peak minus allocated before the call)"
    return (
        "cpu_peak_rss_growth_fork (forked child: warm-up call, malloc_trim, high-water mark reset, then "
        "getrusage ru_maxrss after the call minus RSS before it)"
    )


def peak_memory_mb(
    fn: Callable[[], object], device: Any = "cpu", *, reset: Callable[[], object] | None = None
) -> tuple[float | None, str | None]:
    """``(MiB, note)`` of one steady-state call of ``fn`` (module docstring); ``(None, reason)`` where it
    cannot be measured. ``reset`` runs before the warm-up and before the measured call."""
    if str(device).startswith("cuda"):
        return _cuda_peak(fn, device, reset), None
    return _cpu_peak_in_child(fn, reset)


def _cuda_peak(fn: Callable[[], object], device: Any, reset: Callable[[], object] | None) -> float:
    import torch

    for _ in range(2):  # a warm-up call, then the measured one
        if reset is not None:
            reset()
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
    return (torch.cuda.max_memory_allocated(device) - before) / MIB


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {key}")


def _maxrss_kib() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _trim_heap() -> None:
    """Give glibc's free heap memory back to the system, so that reusing it shows as growth."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _reset_high_water_mark() -> bool:
    """Reset the peak RSS to the current RSS (``/proc/self/clear_refs``, Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _child_measure(fn: Callable[[], object], reset: Callable[[], object] | None) -> dict[str, Any]:
    import gc

    note = None
    if reset is not None:
        reset()
    if _reset_high_water_mark():
        fn()  # warm-up: lazy initialisation, code pages
        if reset is not None:
            reset()
        gc.collect()
        _trim_heap()
        _reset_high_water_mark()
    else:
        note = "first call measured (includes one-time initialisation): the high-water mark cannot be reset"
    start = _status_kib("VmRSS")
    fn()
    return {"peak_mb": max(0, _maxrss_kib() - start) / 1024, "note": note}


def _cpu_peak_in_child(
    fn: Callable[[], object], reset: Callable[[], object] | None
) -> tuple[float | None, str | None]:
    if not hasattr(os, "fork") or not os.path.exists("/proc/self/status"):
        return None, "needs fork and /proc (Linux)"
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: measure, report on the pipe, and leave without running the parent's exit hooks
        os.close(read_fd)
        try:
            message = _child_measure(fn, reset)
        except BaseException as exc:  # reported to the parent, which decides
            message = {"error": f"{type(exc).__name__}: {exc}"[:300], "trace": traceback.format_exc()[-2000:]}
        try:
            os.write(write_fd, json.dumps(message).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                return None, f"memory probe exceeded {CHILD_TIMEOUT_S:.0f} s and was killed"
            ready, _, _ = select.select([read_fd], [], [], min(remaining, 5.0))
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    if not chunks:
        return None, "memory probe process died without a result"
    message = json.loads(b"".join(chunks))
    if "error" in message:
        return None, f"memory probe failed: {message['error']}"
    return float(message["peak_mb"]), message.get("note")


def resolve_device(value: Any) -> Any:
    """``torch.device`` of ``--device`` (default: cuda where available, else cpu); one-line errors. The
    one resolver of the engines (:func:`segbench.engine.distributed.resolve_device`)."""
    from segbench.engine.distributed import resolve_device as resolve

    return resolve(value)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int | None]:
    """Run the block with ``threads`` torch intra-op threads (None: leave as is); restore them after."""
    if threads is None:
        yield None
        return
    if int(threads) < 1:
        raise InputError(f"--threads {threads}: must be >= 1")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
