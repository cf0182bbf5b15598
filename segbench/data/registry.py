"""The dataset registry (``segbench/registry/datasets.yaml``): entries, validation, concrete paths."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from segbench.data.formats import FORMATS, dataset_format
from segbench.errors import InputError
from segbench.optional import MissingPackage
from segbench.yamlfile import load_yaml

DATASETS_YAML = Path(__file__).resolve().parents[1] / "registry" / "datasets.yaml"
SOURCES = ("synthetic", "real", "derived")
COMMON_KEYS = {"description", "source", "format", "layout", "directory", "num_classes"}
SOURCE_KEYS = {
    "synthetic": {"generator", "params"},
    "real": {"downloads", "homepage", "license", "registration"},
    "derived": {"derive_from", "generator", "params"},  # generator: a segbench.data.derived derivation
}
DOWNLOAD_KEYS = {"url", "file", "sha256", "md5", "extract", "size_bytes", "extracted_bytes"}
HEX_DIGITS = {"sha256": 64, "md5": 32}


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        raw = load_yaml(path, "dataset registry")
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the dataset registry ({exc}); fix the file") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict):
        raise InputError(f"{path}: expected a top-level 'datasets:' mapping; fix the file")
    for name, entry in raw["datasets"].items():
        validate_entry(name, entry, path)
    for name, entry in raw["datasets"].items():
        if entry["source"] == "derived":
            _check_derivation_chain(name, raw["datasets"], path)
    return raw["datasets"]


def _check_derivation_chain(name: str, datasets: dict[str, Any], where: Path) -> None:
    """A derived dataset's ``derive_from`` names a dataset of the registry, and following the chain ends at
    a synthetic or real one (no cycle)."""
    seen = [name]
    while datasets[seen[-1]]["source"] == "derived":
        source = datasets[seen[-1]].get("derive_from")
        if source not in datasets:
            raise InputError(
                f"{where}: dataset {seen[-1]!r}: derive_from {source!r} is not a dataset of the registry; fix the entry"
            )
        if source in seen:
            raise InputError(
                f"{where}: dataset {name!r}: derive_from cycles through {seen + [source]}; fix the entries"
            )
        seen.append(source)


def root_source(name: str) -> str:
    """``real`` or ``synthetic``: where a dataset's content comes from, following ``derive_from`` (the
    crops derived from the real ISBI 2012 stack are real data)."""
    entry = dataset_entry(name)
    return root_source(entry["derive_from"]) if entry["source"] == "derived" else entry["source"]


def load_datasets(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """All entries of the dataset registry, validated, by name (a fresh copy the caller may change)."""
    import copy

    return copy.deepcopy(_load(path or DATASETS_YAML))


def dataset_entry(name: str) -> dict[str, Any]:
    """One registry entry; an unknown name is an :class:`InputError` listing the known ones."""
    datasets = load_datasets()
    if name not in datasets:
        raise InputError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(datasets))}")
    return datasets[name]


def validate_entry(name: str, entry: Any, where: Path | str = "datasets.yaml") -> None:
    """Check one entry's keys, source, format, generator/params or downloads, and layout."""

    def fail(problem: str) -> None:
        raise InputError(f"{where}: dataset {name!r}: {problem}; fix the entry")

    if not isinstance(entry, dict):
        fail("expected a mapping")
    source, fmt = entry.get("source"), entry.get("format")
    if source not in SOURCES:
        fail(f"source must be one of {SOURCES}, got {source!r}")
    if fmt not in FORMATS:
        fail(f"format must be one of {tuple(FORMATS)}, got {fmt!r}")
    unknown = set(entry) - COMMON_KEYS - SOURCE_KEYS[source]
    if unknown:
        fail(f"unknown keys {sorted(unknown)} for a {source} dataset")
    classes = entry.get("num_classes", 2)
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        fail(f"num_classes must be an int >= 2 (object classes + background), got {classes!r}")
    if source == "derived":
        _validate_derivation(entry, fail)
    elif source == "synthetic":
        from segbench.data.synthetic import GENERATORS

        generator = entry.get("generator")
        if generator not in GENERATORS:
            fail(f"generator must be one of {sorted(GENERATORS)}, got {generator!r}")
        _check_params(GENERATORS, generator, entry.get("params", {}), "generator", fail)
    else:
        downloads = entry.get("downloads")
        if not isinstance(downloads, list) or not downloads:
            fail("a real dataset needs a non-empty 'downloads' list")
        for item in downloads:
            if not isinstance(item, dict) or set(item) - DOWNLOAD_KEYS or "file" not in item:
                fail(f"each download needs 'file' and only {sorted(DOWNLOAD_KEYS)}, got {item!r}")
            for algo, digits in HEX_DIGITS.items():
                value = item.get(algo)
                if value is not None and (
                    not isinstance(value, str)
                    or len(value) != digits
                    or any(c not in "0123456789abcdef" for c in value)
                ):
                    fail(
                        f"download {item['file']!r}: {algo} must be {digits} lower-case hex digits or null, "
                        f"got {value!r}"
                    )
            for key in ("size_bytes", "extracted_bytes"):
                value = item.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    fail(
                        f"download {item['file']!r}: {key} must be a non-negative integer or null, got {value!r}"
                    )
    _validate_layout(fmt, entry.get("layout"), fail)


def _validate_derivation(entry: dict[str, Any], fail) -> None:
    """``derive_from`` (checked against the registry by :func:`_load`), a known derivation and its params."""
    from segbench.data.derived import DERIVATIONS

    if not isinstance(entry.get("derive_from"), str):
        fail("a derived dataset needs 'derive_from', the name of the dataset it is derived from")
    generator = entry.get("generator")
    if generator not in DERIVATIONS:
        fail(f"generator must be one of the derivations {sorted(DERIVATIONS)}, got {generator!r}")
    _check_params(DERIVATIONS, generator, entry.get("params", {}), "derivation", fail)


def _check_params(modules: Any, generator: str, params: Any, what: str, fail) -> None:
    """``params`` name only keys of the module's ``DEFAULTS`` (a generator's or a derivation's)."""
    try:
        defaults = set(modules[generator].DEFAULTS)
    except MissingPackage:  # checked where the module runs (it names the package); `plan` needs none
        defaults = set(params) if isinstance(params, dict) else set()
    extra = set(params) - defaults if isinstance(params, dict) else {"<not a mapping>"}
    if extra:
        fail(f"unknown params {sorted(extra)} for {what} {generator!r}")


def _validate_layout(fmt: str, layout: Any, fail) -> None:
    if not isinstance(layout, dict) or not layout:
        fail("'layout' must be a non-empty mapping")
    dataset_format(fmt).check_layout(layout, fail)


def dataset_dir(name: str, data_root: str | Path) -> Path:
    """``<data_root>/<directory or name>`` (not checked for existence)."""
    from segbench.paths import child_path

    entry = dataset_entry(name)
    return child_path(data_root, entry.get("directory", name), what="dataset directory", source=DATASETS_YAML)


def layout_paths(name: str, data_root: str | Path) -> dict[str, Any]:
    """The entry's layout as absolute paths under ``data_root``, without checking that they exist."""
    return resolve_layout(dataset_entry(name), dataset_dir(name, data_root))


def resolve_layout(entry: dict[str, Any], root: Path) -> dict[str, Any]:
    """An entry's layout as paths under the dataset directory ``root``."""
    from segbench.paths import relative_child

    layout = entry["layout"]

    def at(rel: str) -> Path:
        return relative_child(root, rel, what="layout path", source=DATASETS_YAML)

    return dataset_format(entry["format"]).resolve(layout, at)


def dataset_paths(name: str, data_root: str | Path) -> dict[str, Any]:
    """Concrete paths of a dataset, checked to exist.

    coco: ``{"train": {"images": Path, "annotations": Path}, "val": {...}}``; isbi2012:
    ``{"volume": Path, "labels": Path}`` (plus ``test_volume`` where present); ctc:
    ``{"sequences": [{"images": Path, "gt_seg": Path}, ...]}``. A missing path is an :class:`InputError`
    naming the dataset, the path and the fix.
    """
    entry = dataset_entry(name)
    paths = layout_paths(name, data_root)
    for key in dataset_format(entry["format"]).optional:  # e.g. ISBI 2012's test stack
        if key in paths and not paths[key].exists():
            del paths[key]
    for path in layout_files(paths):
        if not path.exists():
            raise InputError(f"dataset {name!r}: {path} not found; {missing_fix(name, entry, data_root)}")
    return paths


def missing_fix(name: str, entry: dict[str, Any], data_root: str | Path) -> str:
    """The one-line fix for a dataset that is absent from ``data_root``."""
    where = f"(data root {data_root}; set SEGBENCH_DATA or --data-root to use another)"
    if entry["source"] == "real" and any(d.get("url") is None for d in entry["downloads"]):
        return f"{entry.get('registration', 'download it by hand')}, then run `segbench data prepare {name}` {where}"
    return f"run `segbench data prepare {name}` {where}"


def layout_files(tree: Any) -> list[Path]:
    """Every path in a (nested) result of :func:`layout_paths` / :func:`dataset_paths`."""
    if isinstance(tree, Path):
        return [tree]
    if isinstance(tree, dict):
        return [p for value in tree.values() for p in layout_files(value)]
    return [p for value in tree for p in layout_files(value)]
