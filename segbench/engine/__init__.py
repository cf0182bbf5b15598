"""Training and evaluation engines, one module per model family; the training loop they share is
:mod:`segbench.engine.contract` (see docs/architecture.md, "Training contract")."""

from __future__ import annotations

import importlib
from types import ModuleType

from segbench.errors import NotImplementedYet
from segbench.families import family_spec


def engine_for(family: str) -> ModuleType:
    """The engine module of a model family (:attr:`segbench.families.FamilySpec.engine`); a family whose
    module is missing is 'not implemented yet', an unknown one fails with one line."""
    name = family_spec(family).engine
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise NotImplementedYet(f"engine for model family {family!r} ({name})") from None
        raise
    return module
