"""Dataset formats by name: the layout a ``datasets.yaml`` entry of each format declares, how its paths
resolve, and the name pages use (one :class:`DatasetFormat` per format, torch-free).

One loader per format serves synthetic and real data alike (``segbench.data.coco``,
``segbench.data.biomedical``); a new format is a :func:`register_format` call beside its loader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segbench.component_registry import Registry

Fail = Callable[[str], None]  # raises InputError naming the entry
At = Callable[[str], Path]  # a layout path relative to the dataset directory -> an absolute one


@dataclass(frozen=True)
class DatasetFormat:
    """One on-disk format of ``datasets.yaml`` (its ``format:`` value)."""

    name: str
    label: str  # for pages: "ISBI 2012"
    check_layout: Callable[[dict[str, Any], Fail], None]  # calls fail(problem) on a malformed layout
    resolve: Callable[[dict[str, Any], At], dict[str, Any]]  # the layout as absolute paths
    optional: tuple[str, ...] = ()  # top-level layout keys whose files may be absent (dropped when they are)
    # files a dataset directory may hold that no run reads (the challenge's unlabelled test stack, read only
    # by a submission): left out of the dataset's identity, so placing one beside the data changes no run
    outside_identity: tuple[str, ...] = ()


FORMATS: Registry[DatasetFormat] = Registry("dataset format")


def register_format(fmt: DatasetFormat, *, override: bool = False) -> DatasetFormat:
    """Make ``fmt.name`` a valid ``format:`` of ``datasets.yaml`` (the rule of :mod:`segbench.component_registry`)."""
    return FORMATS.register(fmt.name, fmt, override=override)


def dataset_format(name: Any) -> DatasetFormat:
    """The format ``name``; an unknown one fails with one line naming the known ones."""
    return FORMATS.lookup(name)


def _coco_layout(layout: dict[str, Any], fail: Fail) -> None:
    for split, files in layout.items():
        if not isinstance(files, dict) or set(files) != {"images", "annotations"}:
            fail(f"coco layout split {split!r} needs exactly 'images' and 'annotations'")


def _isbi_layout(layout: dict[str, Any], fail: Fail) -> None:
    if not {"volume", "labels"} <= set(layout) or set(layout) - {"volume", "labels", "test_volume"}:
        fail("isbi2012 layout needs 'volume' and 'labels' (optionally 'test_volume')")


def _ctc_layout(layout: dict[str, Any], fail: Fail) -> None:
    sequences = layout.get("sequences")
    if (
        set(layout) != {"sequences"}
        or not isinstance(sequences, list)
        or not sequences
        or any(not isinstance(s, dict) or set(s) != {"images", "gt_seg"} for s in sequences)
    ):
        fail("ctc layout needs 'sequences', a list of {images, gt_seg}")


register_format(
    DatasetFormat(
        "coco",
        "COCO",
        _coco_layout,
        lambda layout, at: {
            split: {k: at(rel) for k, rel in files.items()} for split, files in layout.items()
        },
    )
)
register_format(
    DatasetFormat(
        "isbi2012",
        "ISBI 2012",
        _isbi_layout,
        lambda layout, at: {key: at(rel) for key, rel in layout.items()},
        # the challenge's test stack has no public labels and is needed only for a submission
        optional=("test_volume",),
        outside_identity=("test-volume.tif",),
    )
)
register_format(
    DatasetFormat(
        "ctc",
        "the Cell Tracking Challenge",
        _ctc_layout,
        lambda layout, at: {
            "sequences": [{k: at(rel) for k, rel in seq.items()} for seq in layout["sequences"]]
        },
    )
)
