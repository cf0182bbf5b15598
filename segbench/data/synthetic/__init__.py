"""Deterministic synthetic datasets in the on-disk formats of the real ones (COCO, ISBI 2012, CTC).

Each generator module has ``DEFAULTS`` (its parameters) and ``generate(out_dir, params, seed)``, which
writes every file of one dataset under ``out_dir`` and depends on nothing but ``params`` and ``seed``
(same seed -> byte-identical files).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import ModuleType

from segbench.optional import require


class _Generators(Mapping[str, ModuleType]):
    """Generator name -> module, imported on first use: the generators need scipy and tifffile, which
    ``segbench list`` / ``plan`` on a bare GPU image do without. A missing package raises
    :class:`segbench.optional.MissingPackage` (one line naming it)."""

    NAMES = ("shapes", "keypoints", "em", "cells", "coco2017")

    def __getitem__(self, name: str) -> ModuleType:
        if name not in self.NAMES:
            raise KeyError(name)
        return require(f"{__name__}.{name}", f"the synthetic dataset generator {name!r}")

    def __contains__(self, name: object) -> bool:
        return name in self.NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(self.NAMES)

    def __len__(self) -> int:
        return len(self.NAMES)


GENERATORS: Mapping[str, ModuleType] = _Generators()


def __getattr__(name: str) -> ModuleType:
    """``synthetic.shapes`` and its siblings as attributes, imported on first use (PEP 562)."""
    if name in _Generators.NAMES:
        return GENERATORS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
