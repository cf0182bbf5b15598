"""Model builders. ``build(cfg)`` builds any run of the registry from its resolved config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segbench.component_registry import Registry
from segbench.errors import InputError, NotImplementedYet

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
    family = cfg["family"]
    if family == "maskrcnn":
        from segbench.models.maskrcnn import build_maskrcnn

        return build_maskrcnn(cfg)
    if family == "unet":
        from segbench.models.unet import build_unet

        return build_unet(cfg)
    if family == "classical":
        from segbench.models.classical import build_classical

        return build_classical(cfg)
    if family == "sliding_window":
        from segbench.models.sliding_window import build_sliding_window

        return build_sliding_window(cfg)
    raise NotImplementedYet(f"model family {family!r}")
