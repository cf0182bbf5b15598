"""A method's identity: which code a plugin run trained with, so that editing the plugin retrains it.

The identity of a plugin spec (see :mod:`segbench.plugins`) is

* its **distribution**: name and version (:mod:`importlib.metadata`) of the installed package that provides
  it: the entry point's distribution, or the distribution that owns the spec's module file (an editable
  install owns the files under its project folder); ``None`` for a module that no installed distribution
  owns (``examples.dice_loss`` in a checkout, a ``path/to/file.py:attr``);
* a **hash of its source files**: the sha256 of the ``.py`` files of the *plugin package*, the outermost
  regular package (a folder with ``__init__.py``) on the spec module's dotted path, with its subpackages;
  a module outside any regular package (a single-file plugin, a ``file.py:attr`` spec) hashes its own file.
  A helper imported from another top-level package is not hashed: bump the plugin's version when it changes.

:func:`segbench.plugins.method_run_config` puts the identity in a method run's config, so it enters that
run's config hash (a change retrains it through the runner's staleness check) and its provenance; registry
runs never carry it, so their hashes do not move. The identity is found without importing the plugin (the
Snakemake ``compare`` job depends on it through :func:`identity_hash` at parse time).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from segbench.errors import InputError
from segbench.io import read_json

# a method spec: ``package.module:attribute`` or the name of an entry point of this group
ENTRY_POINT_GROUP = "segbench.plugins"
SPEC_RE = re.compile(r"^(?P<module>[^:]+):(?P<attr>[A-Za-z_][\w.]*)$")


def _entry_point(name: str) -> metadata.EntryPoint:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep
    raise InputError(
        f"plugin {name!r}: not a module:attr path nor an entry point of group {ENTRY_POINT_GROUP!r}; "
        "write it as package.module:attribute or install the package that declares it"
    )


def _find_top(name: str) -> importlib.machinery.ModuleSpec | None:
    """The import spec of top-level module ``name`` (on ``sys.path``, else in the working directory, as
    :func:`segbench.plugins.load_object` imports it); nothing is executed."""
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__spec__", None) is not None:
        return loaded.__spec__
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    return found or importlib.machinery.PathFinder.find_spec(name, [os.getcwd()])


def _module_sources(module_name: str, spec: str) -> tuple[Path, list[Path]]:
    """(the folder source paths are named relative to, the source files) of dotted ``module_name``."""
    parts = module_name.split(".")
    top = _find_top(parts[0])
    if top is None:
        raise InputError(
            f"plugin {spec!r}: cannot find module {parts[0]!r}; install the package or run from the "
            "directory that contains it"
        )
    if top.submodule_search_locations is None:  # a single-file top-level module
        if not top.origin or not Path(top.origin).is_file():
            raise InputError(f"plugin {spec!r}: module {parts[0]!r} has no source file to hash")
        path = Path(top.origin)
        return path.parent, [path]
    folders = [Path(p) for p in top.submodule_search_locations]
    for depth in range(len(parts)):
        if depth:
            folders = [f / parts[depth] for f in folders if (f / parts[depth]).is_dir()]
        package = next((f for f in folders if (f / "__init__.py").is_file()), None)
        if package is not None:  # the outermost regular package: hash all of it
            return package.parent, package_files(package)
        if depth + 1 < len(parts):  # a namespace package so far: is the next part a module file?
            module = next((p for f in folders if (p := f / f"{parts[depth + 1]}.py").is_file()), None)
            if module is not None:
                return module.parent, [module]
    raise InputError(f"plugin {spec!r}: cannot find the source file of module {module_name!r}")


def package_files(package: Path) -> list[Path]:
    """The ``.py`` files of a regular package and of its subpackages (folders with ``__init__.py``)."""
    out = sorted(package.glob("*.py"))
    for sub in sorted(p for p in package.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        out += package_files(sub)
    return out


def _owner(path: Path, top: str) -> metadata.Distribution | None:
    """The installed distribution whose files include ``path`` (or, installed editable, whose project
    folder contains it), among those that provide top-level module ``top``."""
    path = path.resolve()
    for name in metadata.packages_distributions().get(top, []):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if any(Path(str(dist.locate_file(f))).resolve() == path for f in dist.files or []):
            return dist
        direct = dist.read_text("direct_url.json") or ""
        match = re.search(r'"url"\s*:\s*"(file://[^"]+)"', direct)
        if '"editable": true' in direct and match:
            root = Path(unquote(urlparse(match[1]).path)).resolve()
            if root in path.parents:
                return dist
    return None


def method_identity(spec: str) -> dict[str, Any]:
    """``{"distribution", "version", "source_sha256", "source_files"}`` of plugin ``spec`` (module:attr,
    file.py:attr or an entry point name); source paths are relative to the package's parent folder."""
    dist: metadata.Distribution | None = None
    match = SPEC_RE.match(spec)
    if match is None:
        ep = _entry_point(spec)
        dist = ep.dist
        module_name = ep.module
    else:
        module_name = match["module"]
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        if not path.is_file():
            raise InputError(f"plugin {spec!r}: file {module_name} not found")
        base, files = path.parent, [path]
    else:
        base, files = _module_sources(module_name, spec)
        if dist is None:
            dist = _owner(files[0], module_name.split(".")[0])
    digest = hashlib.sha256()
    names = []
    for path in files:
        name = path.resolve().relative_to(base.resolve()).as_posix()
        names.append(name)
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return {
        "distribution": None if dist is None else dist.metadata["Name"],
        "version": None if dist is None else dist.version,
        "source_sha256": digest.hexdigest()[:16],
        "source_files": names,
    }


def identity_hash(identity: dict[str, Any]) -> str:
    """One short string that changes with the distribution, its version or any hashed source file."""
    dist = identity.get("distribution")
    release = f"{dist}=={identity.get('version')}" if dist else "no distribution"
    return f"{release}, source {identity.get('source_sha256')}"


def spec_slug(spec: str) -> str:
    """The file-name stem of a method spec (its attribute name): ``pkg.mod:PreciseRoIPool`` -> ``PreciseRoIPool``."""
    return spec.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def method_code(spec: str) -> str:
    """What the Snakemake ``compare`` job depends on (a ``params`` entry): the plugin's distribution,
    version and source hash, found without importing it; a plugin that cannot be found gives a text that
    names why (the job then stops with the full error)."""
    try:
        return identity_hash(method_identity(spec))
    except InputError as exc:
        return f"unresolved ({exc})"


def comparison_stale(path: str | Path, spec: str) -> bool:
    """Whether the comparison at ``path`` (``segbench compare``'s record) was computed with other plugin
    code than ``spec`` now names (another distribution, version or source hash); ``False`` where it does
    not exist yet."""
    path = Path(path)
    if not path.is_file():
        return False
    recorded = (read_json(path, "comparison").get("method") or {}).get("identity")
    return recorded is None or identity_hash(recorded) != method_code(spec)
