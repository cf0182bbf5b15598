"""Packages that only some commands need, imported when a command needs them.

``segbench --help``, ``list`` and ``plan`` start with torch, numpy, PyYAML and Pillow alone (a bare GPU
image): jsonschema, pycocotools and faster-coco-eval are imported where they are used, scipy and tifffile
where data is generated. A command that needs a package that is missing stops with
:class:`MissingPackage`: one line naming the package and how to install it, exit 2 (docs/gpu.md); the CLI
turns any other ``ModuleNotFoundError`` of a dependency into the same line.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType

from segbench.errors import InputError

# import name -> (distribution, its requirement in pyproject.toml); tests/test_bare_image.py keeps them equal
PACKAGES = {
    "torch": ("torch", "torch>=2.4,<3"),
    "torchvision": ("torchvision", "torchvision>=0.19,<1"),
    "numpy": ("numpy", "numpy>=1.24"),
    "scipy": ("scipy", "scipy>=1.10"),
    "skimage": ("scikit-image", "scikit-image>=0.21"),
    "tifffile": ("tifffile", "tifffile>=2023.1"),
    "pycocotools": ("pycocotools", "pycocotools>=2.0.7"),
    "faster_coco_eval": ("faster-coco-eval", "faster-coco-eval>=1.6"),
    "numba": ("numba", "numba>=0.59"),
    "pandas": ("pandas", "pandas>=2.0"),
    "matplotlib": ("matplotlib", "matplotlib>=3.7"),
    "jinja2": ("jinja2", "jinja2>=3.1"),
    "tqdm": ("tqdm", "tqdm>=4.65"),
    "yaml": ("pyyaml", "pyyaml>=6.0"),
    "jsonschema": ("jsonschema", "jsonschema>=4.18"),
    "snakemake": ("snakemake", "snakemake>=8.0"),
    "dvc": ("dvc", "dvc>=3.0"),
}


class MissingPackage(InputError):
    """A command needs a package that is not installed. Exit code 2."""


def missing_package(exc: ImportError, purpose: str, instead: str = "") -> MissingPackage | None:
    """The one-line error for ``exc`` if it says that one of segbench's dependencies is not installed
    (``instead``: another way that needs no such package); ``None`` for any other import error."""
    top = (exc.name or "").partition(".")[0]
    if not isinstance(exc, ModuleNotFoundError) or top not in PACKAGES:
        return None
    dist, spec = PACKAGES[top]
    alternative = f", or {instead}" if instead else ""
    return MissingPackage(
        f"{purpose} needs the Python package {dist}, which is not installed; "
        f"pip install '{spec}'{alternative} (offline: docs/gpu.md)"
    )


def require(module: str, purpose: str, instead: str = "") -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingPackage` naming the package that ``purpose``
    needs and is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = missing_package(exc, purpose, instead)
        if error is None:
            raise
        raise error from None


class LazyModules(Mapping[str, ModuleType]):
    """Name -> ``<package>.<name>``, imported on first use by :func:`require` (a missing package is one
    line naming it), for plug-in tables of modules (data generators, derivations) whose dependencies
    ``segbench list`` / ``plan`` on a bare GPU image do without."""

    def __init__(self, package: str, names: tuple[str, ...], what: str) -> None:
        self.package, self.names, self.what = package, names, what

    def __getitem__(self, name: str) -> ModuleType:
        if name not in self.names:
            raise KeyError(name)
        return require(f"{self.package}.{name}", f"{self.what} {name!r}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def available(module: str) -> bool:
    """Whether ``module`` imports (a missing or broken install both count as unavailable)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
