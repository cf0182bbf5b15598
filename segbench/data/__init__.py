"""Datasets: the registry (``datasets.yaml``), synthetic generation, download and verification.

``prepare(name, data_root)`` makes a dataset ready under ``<data_root>/<name>``: a synthetic one is
generated into a temporary directory beside the target and renamed into place with its
``MANIFEST.json`` (so an interrupted generation leaves nothing that looks complete); a real one is
located (or downloaded) and checked against its MANIFEST. Loaders then use
:func:`segbench.data.registry.dataset_paths`.
"""

from segbench.data.preparation import MANIFEST, dataset_identity, prepare, read_manifest, verify
from segbench.data.registry import dataset_dir, dataset_entry, dataset_paths, load_datasets

__all__ = [
    "MANIFEST",
    "dataset_dir",
    "dataset_identity",
    "dataset_entry",
    "dataset_paths",
    "load_datasets",
    "prepare",
    "read_manifest",
    "verify",
]
