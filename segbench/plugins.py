"""The plugin API: a new RoI layer, mask head, mask loss, U-Net loss or whole model, run under exactly the
protocol of a table's baseline rows.

A plugin is any importable object, named either by a ``module:attr`` path (``examples.precise_roi_pool:
precise_roi_pool``; a ``path/to/file.py:attr`` works too) or by the name of an entry point in the
``segbench.plugins`` group of an installed package. It declares what it replaces with a ``segbench_kind``
attribute (or the caller passes ``kind``):

=============  ==================================================================  ===================
kind           contract (the same inputs as the component it replaces)            replaces model key
=============  ==================================================================  ===================
roi_layer      ``f(features[N,C,H,W], rois[K,5], output_size, spatial_scale,       ``roi_layer``
               sampling_ratio) -> [K,C,oh,ow]``, differentiable
mask_head      ``factory(MaskHeadSpec) -> (mask_head, mask_predictor)``;            ``mask_head``
               predictor output ``[N, out_channels, mask_size, mask_size]``
mask_loss      a :class:`segbench.models.maskrcnn.MaskLoss`                        ``mask_loss``
unet_loss      ``f(logits[N,2,H,W], target[N,H,W] (long), weights[N,H,W]) ->        ``loss``
               scalar``, differentiable
model          ``factory(cfg) -> nn.Module`` with the family's model interface      ``plugin``
=============  ==================================================================  ===================

:func:`register_plugin` imports the object, checks its contract on a small probe (a plugin that breaks
it gets an error naming the contract and the expected shape) and registers it under ``segbench_name``
(default: the attribute name) in the registry of the component it replaces.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from segbench.errors import InputError, SegbenchError
from segbench.plugin_identity import ENTRY_POINT_GROUP, SPEC_RE


@dataclass(frozen=True)
class PluginKind:
    family: str  # the model family whose component it replaces
    model_key: str  # the run's model key that names the component
    description: str


PLUGIN_KINDS: dict[str, PluginKind] = {
    "roi_layer": PluginKind("maskrcnn", "roi_layer", "a RoI layer (segbench.ops)"),
    "mask_head": PluginKind("maskrcnn", "mask_head", "a Mask R-CNN mask head factory"),
    "mask_loss": PluginKind("maskrcnn", "mask_loss", "a Mask R-CNN mask loss (MaskLoss)"),
    "unet_loss": PluginKind("unet", "loss", "a U-Net training loss"),
    "model": PluginKind("*", "plugin", "a whole model factory (cfg -> nn.Module)"),
}


@dataclass(frozen=True)
class Plugin:
    spec: str
    kind: str
    name: str
    obj: Any

    @property
    def model_key(self) -> str:
        return PLUGIN_KINDS[self.kind].model_key

    def as_dict(self) -> dict[str, str]:
        return {"spec": self.spec, "kind": self.kind, "name": self.name}


def load_object(spec: str) -> Any:
    """Import ``module:attr`` (or ``file.py:attr``), or load the entry point named ``spec``."""
    match = SPEC_RE.match(spec)
    if match is None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == spec:
                try:
                    return ep.load()
                except Exception as exc:  # noqa: BLE001 - third-party code: anything may raise on import
                    raise import_failure(spec, f"entry point {ep.value!r}", exc, ep.module) from None
        raise InputError(
            f"plugin {spec!r}: not a module:attr path nor an entry point of group "
            f"{ENTRY_POINT_GROUP!r}; write it as package.module:attribute"
        )
    module_name, attr = match["module"], match["attr"]
    module = _import_module(module_name, spec)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"plugin {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _import_module(module_name: str, spec: str) -> Any:
    if module_name.endswith(".py"):
        return _import_file(Path(module_name), spec)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, module_name):
            raise import_failure(spec, repr(module_name), exc, module_name) from None
        if os.getcwd() in sys.path:
            raise InputError(f"plugin {spec!r}: cannot import {module_name!r} ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - third-party code: anything may raise on import
        raise import_failure(spec, repr(module_name), exc, module_name) from None
    # Console scripts do not put the working directory on sys.path; a plugin in the project tree
    # (examples/, a user's package checkout) is found from there.
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, module_name):
            raise import_failure(spec, repr(module_name), exc, module_name) from None
        raise InputError(
            f"plugin {spec!r}: cannot import {module_name!r} ({exc}); install the package "
            "or run from the directory that contains it"
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise import_failure(spec, repr(module_name), exc, module_name) from None


def _import_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise InputError(f"plugin {spec!r}: file {path} not found")
    name = f"segbench_plugin_{path.stem}"
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == path.resolve():
        return loaded  # the same file loaded again: the same objects, so registering them is a no-op
    mod_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    try:
        mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - third-party code: anything may raise on import
        sys.modules.pop(name, None)
        raise import_failure(spec, str(path), exc, path) from None
    return module


def _is_missing(exc: ModuleNotFoundError, module_name: str) -> bool:
    """True when the plugin's module itself (or a parent package) is not found, not one it imports."""
    parts = module_name.split(".")
    return exc.name in {".".join(parts[: i + 1]) for i in range(len(parts))}


def import_failure(spec: str, what: str, exc: BaseException, source: str | Path | None) -> InputError:
    """One line for a plugin whose import raised: the file:line in the plugin's code, the error, the fix.

    ``source`` is the plugin's module name or file: the reported frame is the deepest one inside its
    top-level package (else the deepest outside Python's import machinery)."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}"
        detail = exc.msg
    else:
        where = _failure_site(exc, _source_root(source))
        detail = str(exc)
    detail = " ".join(detail.split())[:300]
    fix = "install the missing package" if isinstance(exc, ModuleNotFoundError) else "fix the plugin"
    return InputError(
        f"plugin {spec!r}: importing {what} raised {type(exc).__name__} at {where}: {detail}; {fix}"
    )


def _source_root(source: str | Path | None) -> Path | None:
    """The file or top-level package folder of a plugin's code (``None`` if it cannot be found)."""
    if isinstance(source, Path):
        return source.resolve()
    if not source:
        return None
    try:
        found = importlib.util.find_spec(source.split(".")[0])
    except Exception:  # noqa: BLE001 - a broken parent package: fall back to the traceback alone
        return None
    if found is None:
        return None
    if found.submodule_search_locations:
        return Path(list(found.submodule_search_locations)[0]).resolve()
    return Path(found.origin).resolve() if found.origin else None


def _failure_site(exc: BaseException, root: Path | None) -> str:
    """``file:line`` of the deepest traceback frame in ``root``, else the deepest outside importlib."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith("<") and "importlib" not in Path(f.filename).parts
    ]
    if root is not None:
        inside = [f for f in frames if Path(f.filename).resolve().is_relative_to(root)]
        frames = inside or frames
    if not frames:
        return "an unknown line"
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def plugin_source(spec: str) -> str | Path | None:
    """Where a plugin's code is: its ``.py`` file, its module name, or its entry point's module."""
    match = SPEC_RE.match(spec)
    if match is None:
        return next(
            (ep.module for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec), None
        )
    module = match["module"]
    return Path(module) if module.endswith(".py") else module


def failure_site(spec: str, exc: BaseException) -> str:
    """``file:line`` in the plugin's own code where ``exc`` was raised (else the deepest frame)."""
    try:
        root = _source_root(plugin_source(spec))
    except Exception:  # noqa: BLE001 - a broken installation: the traceback alone
        root = None
    return _failure_site(exc, root)


def raised(exc: BaseException, spec: str) -> str:
    """``RuntimeError: boom at my_loss.py:12``: what a plugin raised and where, for one-line errors."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]} at {failure_site(spec, exc)}"


def resolve_plugin(spec: str, kind: str | None = None) -> Plugin:
    """Load ``spec``, decide its kind and name, and check its contract (does not register it). Any
    exception the plugin's code raises on the way is one line naming it, the file:line and the fix."""
    obj = load_object(spec)
    try:
        return _resolve(spec, obj, kind)
    except (SegbenchError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - third-party code: anything may raise
        raise InputError(
            f"plugin {spec!r}: checking its contract on a small probe raised {raised(exc, spec)}; fix the "
            "plugin (its segbench_kind and the contract of its kind: docs/adding_a_method.md)"
        ) from None


def _resolve(spec: str, obj: Any, kind: str | None) -> Plugin:
    kind = kind or getattr(obj, "segbench_kind", None)
    if kind not in PLUGIN_KINDS:
        raise InputError(
            f"plugin {spec!r}: unknown kind {kind!r}; set segbench_kind on the object or pass "
            f"--kind, one of {', '.join(PLUGIN_KINDS)}"
        )
    default_name = spec.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    name = str(getattr(obj, "segbench_name", default_name))
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise InputError(f"plugin {spec!r}: name {name!r} must use letters, digits and _ only")
    CONTRACT_CHECKS[kind](obj, spec)
    return Plugin(spec=spec, kind=kind, name=name, obj=obj)


def register_plugin(spec: str, kind: str | None = None) -> Plugin:
    """Resolve, check and register a plugin in the registry of the component it replaces."""
    plugin = resolve_plugin(spec, kind)
    REGISTRARS[plugin.kind](plugin)
    return plugin


# ----------------------------------------------------------------------------------------------------------
# Contracts: a probe with small inputs; the error says which contract and what was expected.
# ----------------------------------------------------------------------------------------------------------


def _breach(spec: str, kind: str, what: str) -> InputError:
    return InputError(
        f"plugin {spec!r} breaks the {kind} contract: {what}; fix the plugin (contracts: docs/adding_a_method.md)"
    )


def check_roi_layer(fn: Any, spec: str) -> None:
    if not callable(fn):
        raise _breach(
            spec,
            "roi_layer",
            f"expected a callable f(features, rois, output_size, spatial_scale, "
            f"sampling_ratio), got {type(fn).__name__}",
        )
    generator = torch.Generator().manual_seed(0)
    features = torch.rand(2, 3, 12, 12, dtype=torch.float64, generator=generator, requires_grad=True)
    rois = torch.tensor(
        [[0, 1.0, 1.0, 9.0, 7.0], [1, 0.5, 2.0, 5.5, 11.0], [0, 3.0, 3.0, 3.5, 3.5]], dtype=torch.float64
    )
    expected = (3, 3, 4, 5)
    try:
        out = fn(features, rois, (4, 5), 1.0, 2)
    except Exception as exc:  # noqa: BLE001 - any failure on the probe is a contract breach
        raise _breach(
            spec,
            "roi_layer",
            f"calling it on features [2,3,12,12], rois [3,5], output_size (4,5), "
            f"spatial_scale 1.0, sampling_ratio 2 raised {raised(exc, spec)}",
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise _breach(
            spec,
            "roi_layer",
            f"expected output shape [K, C, oh, ow] = {list(expected)} for features "
            f"[2,3,12,12], rois [3,5], output_size (4,5); got {got}",
        )
    if not torch.isfinite(out).all():
        raise _breach(spec, "roi_layer", "output has NaN/inf on a finite probe")
    out.sum().backward()
    if features.grad is None or not torch.isfinite(features.grad).all():
        raise _breach(
            spec, "roi_layer", "no finite gradient reaches the features (it must be differentiable)"
        )


def check_mask_head(factory: Any, spec: str) -> None:
    from segbench.models.maskrcnn import MaskHeadSpec

    head_spec = MaskHeadSpec(in_channels=8, roi_size=7, out_channels=3, conv_dim=8, fc_dim=16)
    try:
        head, predictor = factory(head_spec)
        out = predictor(head(torch.rand(2, 8, 7, 7)))
    except Exception as exc:  # noqa: BLE001
        raise _breach(
            spec,
            "mask_head",
            f"factory(MaskHeadSpec(in_channels=8, roi_size=7, out_channels=3)) "
            f"-> (head, predictor) on RoI features [2,8,7,7] raised "
            f"{raised(exc, spec)}",
        ) from None
    if tuple(out.shape) != (2, 3, 14, 14):
        raise _breach(
            spec,
            "mask_head",
            f"expected mask logits [N, out_channels, mask_size, mask_size] = "
            f"[2, 3, 14, 14]; got {list(out.shape)}",
        )


def check_mask_loss(loss: Any, spec: str) -> None:
    from segbench.models.maskrcnn import MaskLoss

    if not isinstance(loss, MaskLoss):
        raise _breach(
            spec, "mask_loss", f"expected a segbench.models.maskrcnn.MaskLoss, got {type(loss).__name__}"
        )
    channels = loss.channels(3)
    logits = torch.randn(4, channels, 6, 6, requires_grad=True)
    targets = (torch.rand(4, 6, 6) > 0.5).float()
    classes = torch.tensor([1, 2, 3, 1])
    value = loss.loss(logits, targets, classes)
    if value.dim() != 0 or not torch.isfinite(value):
        raise _breach(
            spec,
            "mask_loss",
            f"loss(logits [4,{channels},6,6], targets [4,6,6], classes [4]) must be a "
            f"finite scalar; got shape {list(value.shape)}",
        )
    probs = loss.probabilities(logits.detach(), classes)
    if tuple(probs.shape) != (4, 1, 6, 6):
        raise _breach(
            spec,
            "mask_loss",
            f"probabilities(...) must be [N, 1, m, m] = [4, 1, 6, 6]; got {list(probs.shape)}",
        )


def check_unet_loss(fn: Any, spec: str) -> None:
    logits = torch.randn(1, 2, 8, 8, requires_grad=True)
    target = (torch.rand(1, 8, 8) > 0.5).long()
    weights = torch.ones(1, 8, 8)
    try:
        value = fn(logits, target, weights)
    except Exception as exc:  # noqa: BLE001
        raise _breach(
            spec,
            "unet_loss",
            f"f(logits [1,2,8,8], target [1,8,8], weights [1,8,8]) raised {raised(exc, spec)}",
        ) from None
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        got = (
            f"a tensor of shape {list(value.shape)}"
            if isinstance(value, torch.Tensor)
            else f"a {type(value).__name__}"
        )
        raise _breach(
            spec,
            "unet_loss",
            "expected a scalar tensor (shape []) from f(logits [1,2,8,8] float32, target [1,8,8] int64, "
            f"weights [1,8,8] float32), got {got}; reduce it (mean)",
        )
    value.backward()
    if logits.grad is None:
        raise _breach(spec, "unet_loss", "no gradient reaches the logits (it must be differentiable)")


def check_model(factory: Any, spec: str) -> None:
    if not callable(factory):
        raise _breach(
            spec, "model", f"expected a callable factory(cfg) -> nn.Module, got {type(factory).__name__}"
        )


CONTRACT_CHECKS = {
    "roi_layer": check_roi_layer,
    "mask_head": check_mask_head,
    "mask_loss": check_mask_loss,
    "unet_loss": check_unet_loss,
    "model": check_model,
}


# ----------------------------------------------------------------------------------------------------------
# Registration into the component registries (one rule for all, segbench.component_registry: a name taken
# by another object is an error; the same plugin registered again is a no-op).
# ----------------------------------------------------------------------------------------------------------


def _register_roi_layer(plugin: Plugin) -> None:
    from segbench.ops import register_roi_layer

    register_roi_layer(plugin.name, plugin.obj)


def _register_mask_head(plugin: Plugin) -> None:
    from segbench.models.maskrcnn import register_mask_head

    register_mask_head(plugin.name, plugin.obj)


def _register_mask_loss(plugin: Plugin) -> None:
    from segbench.models.maskrcnn import register_mask_loss

    register_mask_loss(plugin.name, plugin.obj)


def _register_unet_loss(plugin: Plugin) -> None:
    from segbench.models.unet_losses import register_unet_loss

    register_unet_loss(plugin.name, plugin.obj)


def _register_model(plugin: Plugin) -> None:
    from segbench.models import register_model

    register_model(plugin.name, plugin.obj)


REGISTRARS = {
    "roi_layer": _register_roi_layer,
    "mask_head": _register_mask_head,
    "mask_loss": _register_mask_loss,
    "unet_loss": _register_unet_loss,
    "model": _register_model,
}


# ----------------------------------------------------------------------------------------------------------
# Method runs: a baseline run with one component replaced.
# ----------------------------------------------------------------------------------------------------------


def method_run_config(base: dict[str, Any], plugin: Plugin) -> dict[str, Any]:
    """The resolved config of ``base`` (a resolved registry run) with the plugin's component swapped in.

    Everything else (data, schedule, seeds, scale overlay) is the baseline's: the identical protocol.
    """
    kind = PLUGIN_KINDS[plugin.kind]
    if kind.family not in ("*", base["family"]):
        raise InputError(
            f"plugin {plugin.spec!r} ({plugin.kind}) replaces a {kind.family} component, but run "
            f"{base['run']!r} is a {base['family']} model; compare it on a {kind.family} table"
        )
    cfg = {**base, "model": dict(base["model"])}
    cfg["model"][kind.model_key] = plugin.name
    if plugin.kind == "roi_layer":
        cfg["model"]["roi_aggregation"] = "avg"
        cfg["model"]["roi_aligned"] = False
    cfg["run"] = f"{base['run']}+{plugin.name}"
    cfg["run_id"] = f"{cfg['run']}-seed{base['seed']}"
    # The plugin's distribution, version and source hash: a change gives another config hash, so the
    # runner retrains the method run (segbench.plugin_identity); registry runs never carry it.
    cfg["method"] = {**plugin.as_dict(), "identity": plugin_identity(plugin)}
    return cfg


_IDENTITIES: dict[str, tuple[Any, dict[str, Any]]] = {}  # spec -> (the loaded object, its identity)


def plugin_identity(plugin: Plugin) -> dict[str, Any]:
    """The identity of the plugin's code (:func:`segbench.plugin_identity.method_identity`), read once per
    loaded object, so that a source file edited after the import does not label the code already loaded."""
    from segbench.plugin_identity import method_identity

    cached = _IDENTITIES.get(plugin.spec)
    if cached is None or cached[0] is not plugin.obj:
        cached = _IDENTITIES[plugin.spec] = (plugin.obj, method_identity(plugin.spec))
    return cached[1]
