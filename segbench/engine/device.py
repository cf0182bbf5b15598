"""Check a ``--device`` value before anything is written, so a typo or a missing GPU is one line.

The rule is the training contract's (:func:`segbench.engine.distributed.resolve_device`); this only runs it
early, before a run folder or a record exists.
"""

from __future__ import annotations


def check_device(device: str | None) -> str | None:
    """``device`` unchanged when this machine can run it (``None``: the engine picks cuda or cpu);
    otherwise the contract's one-line :class:`~segbench.errors.InputError`."""
    if device is None:
        return None
    from segbench.engine.distributed import resolve_device

    resolve_device(device)
    return device
