"""Shared fixtures. Tests run on CPU at the smoke scale; real data comes from ../shared/data when present."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from segbench.io import waiting_lock
from segbench.paths import REPO_ROOT, shared_data_root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` run first (a stable sort): under ``pytest -n 2`` (``make test``) the
    longest ones then start at once instead of ending the run on one busy worker."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@contextlib.contextmanager
def dvc_in_checkout() -> Iterator[None]:
    """One DVC command at a time in the checkout: DVC takes a repository lock and refuses a second
    process ("Unable to acquire lock"), which parallel test workers (``pytest -n``) would otherwise be."""
    with waiting_lock(REPO_ROOT / ".dvc" / "tmp", "segbench-tests"):
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$SEGBENCH_SHARED_DATA``); skips the test where it is absent."""
    root = shared_data_root()
    if root is None:
        pytest.skip("shared development data absent (set SEGBENCH_SHARED_DATA or place ../shared/data)")
    return root


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="module")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """A six-image COCO instances set per split (``test_data_coco.write_tiny_coco``), one per module."""
    from test_data_coco import write_tiny_coco

    return write_tiny_coco(tmp_path_factory.mktemp("coco"))


@pytest.fixture
def engine_on_tiny_coco(monkeypatch: pytest.MonkeyPatch, tiny_coco: dict) -> dict[str, dict[str, Path]]:
    """The Mask R-CNN engine reads ``tiny_coco`` for every split (use with ``pytest.mark.usefixtures``)."""
    from test_data_coco import serve_tiny_coco

    serve_tiny_coco(monkeypatch, tiny_coco)
    return tiny_coco
