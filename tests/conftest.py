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
