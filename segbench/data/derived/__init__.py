"""Datasets derived from another registry dataset (``source: derived`` in ``datasets.yaml``).

Each derivation module has ``DEFAULTS`` (its parameters) and ``derive(source, out_dir, params)``, which
reads the prepared source dataset (its :func:`segbench.data.registry.dataset_paths`) and writes every
file of the derived one under ``out_dir``, depending on nothing else (same source and params ->
byte-identical files). :func:`segbench.data.prepare` records the source's hash in the derived
dataset's MANIFEST and derives again when the source changes.
"""

from __future__ import annotations

from segbench.optional import LazyModules

# derivation name -> module, imported on first use (they need scipy, tifffile and pycocotools, which
# ``segbench list`` / ``plan`` do without)
DERIVATIONS = LazyModules(__name__, ("isbi_instances",), "the dataset derivation")
