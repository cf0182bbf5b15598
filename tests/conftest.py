"""Shared fixtures. Tests run on CPU at the smoke scale; real data comes from ../shared/data when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from segbench.paths import shared_data_root


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
