"""Check a ``--device`` value before anything is written, so a typo or a missing GPU is one line."""

from __future__ import annotations

from segbench.errors import InputError

KINDS = ("cpu", "cuda", "mps")


def check_device(device: str | None) -> str | None:
    """``device`` unchanged when this machine can run it (``None``: the engine picks cuda or cpu);
    otherwise an :class:`InputError` saying what exists."""
    if device is None:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in KINDS:
        raise InputError(f"--device {device!r} is not a device; use cpu, cuda, cuda:<index> or mps")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"--device {device}: no CUDA GPU is visible on this machine "
                             "(torch.cuda.is_available() is False); use --device cpu or omit --device")
        if dev.index is not None and dev.index >= count:
            raise InputError(f"--device {device}: only {count} CUDA GPU(s) visible (cuda:0..cuda:{count - 1}); "
                             "choose one of them")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return device
