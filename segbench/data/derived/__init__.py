"""Datasets derived from another registry dataset (``source: derived`` in ``datasets.yaml``).

Each derivation module has ``DEFAULTS`` (its parameters) and ``derive(source, out_dir, params)``, which
reads the prepared source dataset (its :func:`segbench.data.registry.dataset_paths`) and writes every
file of the derived one under ``out_dir``, depending on nothing else (same source and params ->
byte-identical files). :func:`segbench.data.prepare` records the source's hash in the derived
dataset's MANIFEST and derives again when the source changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import ModuleType

from segbench.optional import require


class _Derivations(Mapping[str, ModuleType]):
    """Derivation name -> module, imported on first use (they need scipy, tifffile and pycocotools,
    which ``segbench list`` / ``plan`` do without)."""

    NAMES = ("isbi_instances",)

    def __getitem__(self, name: str) -> ModuleType:
        if name not in self.NAMES:
            raise KeyError(name)
        return require(f"{__name__}.{name}", f"the dataset derivation {name!r}")

    def __contains__(self, name: object) -> bool:
        return name in self.NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(self.NAMES)

    def __len__(self) -> int:
        return len(self.NAMES)


DERIVATIONS: Mapping[str, ModuleType] = _Derivations()
