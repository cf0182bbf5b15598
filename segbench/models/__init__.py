"""Model builders. ``build(cfg)`` builds any run of the registry from its resolved config."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from segbench.component_registry import Registry
from segbench.errors import InputError
from segbench.families import family_spec

ModelFactory = Callable[[dict[str, Any]], Any]
MODEL_PLUGINS: Registry[ModelFactory] = Registry("model plugin")


def register_model(name: str, factory: ModelFactory, *, override: bool = False) -> None:
    """Add a whole-model factory ``factory(cfg) -> nn.Module`` under ``name`` (model key ``plugin``); the
    model must keep its family's interface (torchvision detection API for Mask R-CNN, logits for U-Net).
    A name taken by another factory is an error unless ``override=True`` (:mod:`segbench.component_registry`)."""
    MODEL_PLUGINS.register(name, factory, override=override)


def build(cfg: dict[str, Any]) -> Any:
    """Build the model of a resolved run config (``segbench.registry.resolve_run``)."""
    plugin = cfg["model"].get("plugin")
    if plugin is not None:
        if plugin not in MODEL_PLUGINS:
            raise InputError(f"model plugin {plugin!r} is not registered; pass --method to register it")
        return MODEL_PLUGINS[plugin](cfg)
    module, _, function = family_spec(cfg["family"]).builder.partition(":")
    return getattr(importlib.import_module(module), function)(cfg)
