"""One registration rule for every plugin registry (segbench.component_registry)."""

from __future__ import annotations

import pytest

from segbench.component_registry import Registry
from segbench.errors import InputError


def one() -> int:
    return 1


def two() -> int:
    return 2


def test_a_new_name_is_added_and_read_like_a_mapping() -> None:
    reg: Registry = Registry("widget", {"a": one})
    reg.register("b", two)
    assert list(reg) == ["a", "b"] and len(reg) == 2 and reg["b"] is two
    assert "a" in reg and reg.get("c") is None and dict(reg) == {"a": one, "b": two}


def test_a_taken_name_is_an_error_naming_the_holder() -> None:
    reg: Registry = Registry("widget", {"a": one})
    with pytest.raises(InputError, match=r"widget 'a' is already registered \(to .*one\).*override=True"):
        reg.register("a", two)
    assert reg["a"] is one


def test_override_replaces_explicitly() -> None:
    reg: Registry = Registry("widget", {"a": one})
    assert reg.register("a", two, override=True) is two
    assert reg["a"] is two


def test_the_same_object_again_is_a_no_op() -> None:
    reg: Registry = Registry("widget", {"a": one})
    reg.register("a", one)
    assert list(reg) == ["a"]


def test_reserved_and_bad_names() -> None:
    reg: Registry = Registry("widget", reserved=("default",))
    with pytest.raises(InputError, match="reserved"):
        reg.register("default", one)
    with pytest.raises(InputError, match="non-empty string"):
        reg.register("", one)


def test_unregister() -> None:
    reg: Registry = Registry("widget", {"a": one})
    assert reg.pop("a") is one and "a" not in reg
    with pytest.raises(InputError, match="not registered"):
        reg.unregister("a")


def test_no_item_assignment() -> None:
    reg: Registry = Registry("widget")
    with pytest.raises(TypeError):
        reg["a"] = one  # type: ignore[index]


@pytest.mark.parametrize("kind", ["roi_layer", "mask_head", "mask_loss", "unet_loss", "model"])
def test_every_component_registry_follows_the_rule(kind: str) -> None:
    from segbench.engine.unet import UNET_LOSSES, register_unet_loss
    from segbench.models import MODEL_PLUGINS, register_model
    from segbench.models.maskrcnn import MASK_HEADS, MASK_LOSSES, register_mask_head, register_mask_loss
    from segbench.ops import ROI_LAYERS, register_roi_layer

    registry, register = {
        "roi_layer": (ROI_LAYERS, register_roi_layer),
        "mask_head": (MASK_HEADS, register_mask_head),
        "mask_loss": (MASK_LOSSES, register_mask_loss),
        "unet_loss": (UNET_LOSSES, register_unet_loss),
        "model": (MODEL_PLUGINS, register_model),
    }[kind]
    assert isinstance(registry, Registry)
    first, second = (lambda *a: 1), (lambda *a: 2)
    register("rule_test", first)
    try:
        register("rule_test", first)  # the same object: a no-op
        with pytest.raises(InputError, match="already registered"):
            register("rule_test", second)
        assert registry["rule_test"] is first
        register("rule_test", second, override=True)
        assert registry["rule_test"] is second
    finally:
        registry.unregister("rule_test")
