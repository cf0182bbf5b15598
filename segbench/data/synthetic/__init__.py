"""Deterministic synthetic datasets in the on-disk formats of the real ones (COCO, ISBI 2012, CTC).

Each generator module has ``DEFAULTS`` (its parameters) and ``generate(out_dir, params, seed)``, which
writes every file of one dataset under ``out_dir`` and depends on nothing but ``params`` and ``seed``
(same seed -> byte-identical files).
"""

from __future__ import annotations

from types import ModuleType

from segbench.optional import LazyModules

# generator name -> module, imported on first use: the generators need scipy and tifffile, which
# ``segbench list`` / ``plan`` on a bare GPU image do without
GENERATORS = LazyModules(
    __name__, ("shapes", "keypoints", "em", "cells", "coco2017"), "the synthetic dataset generator"
)


def __getattr__(name: str) -> ModuleType:
    """``synthetic.shapes`` and its siblings as attributes, imported on first use (PEP 562)."""
    if name in GENERATORS:
        return GENERATORS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
