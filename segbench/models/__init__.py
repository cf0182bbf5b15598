"""Model builders. ``build(cfg)`` builds any run of the registry from its resolved config."""

from __future__ import annotations

from typing import Any

from segbench.errors import NotImplementedYet


def build(cfg: dict[str, Any]) -> Any:
    """Build the model of a resolved run config (``segbench.registry.resolve_run``)."""
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
    raise NotImplementedYet(f"model family {family!r}")
