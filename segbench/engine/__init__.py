"""Training and evaluation engines, one module per model family; the training loop they share is
:mod:`segbench.engine.contract` (see docs/architecture.md, "Training contract")."""

from __future__ import annotations

import importlib
from types import ModuleType

from segbench.errors import NotImplementedYet

FAMILY_ENGINES = {
    "maskrcnn": "segbench.engine.maskrcnn",
    "unet": "segbench.engine.unet",
    "classical": "segbench.engine.classical",
    "sliding_window": "segbench.engine.sliding_window",
}


def engine_for(family: str) -> ModuleType:
    """The engine module of a model family; a family without one is 'not implemented yet'."""
    name = FAMILY_ENGINES.get(family)
    if name is None:
        raise NotImplementedYet(f"engine for model family {family!r}")
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise NotImplementedYet(f"engine for model family {family!r} ({name})") from None
        raise
    return module
