"""The results layout is built in one place: segbench/paths.py (issue #37: no hand-built results path)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import segbench

PACKAGE = Path(segbench.__file__).parent
REPO = PACKAGE.parent
# a results sub-folder joined by hand: `x / "runs"`, `"runs" / x`, or an f-string `.../tables/{...}`
HAND_BUILT = re.compile(
    r"""/ (["'])(runs|tables|pretrained|compare|bench)\1|(["'])(runs|tables)\3 /|/(runs|tables)/\{"""
)


def test_no_results_path_is_built_outside_paths_py():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "paths.py" or path.parent != PACKAGE
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if HAND_BUILT.search(line)
    ]
    assert not found, "build these with segbench.paths:\n" + "\n".join(found)


def test_the_pattern_finds_a_hand_built_path():
    assert HAND_BUILT.search('runs = results / scale / "runs"')
    assert HAND_BUILT.search('f"{root}/{scale}/tables/{name}.json"')
    assert HAND_BUILT.search("f\"under {results / scale / 'runs'}\"")  # in a message too
    assert not HAND_BUILT.search("runs = runs_dir(results, scale)")


def test_no_tracked_file_is_over_2_mb() -> None:
    """The repository's size rule: a committed file stays under 2 MB (2048 KiB); larger generated artifacts
    go through DVC, and the pinned mini backbones are committed xz-compressed (segbench.paths.stored_weights)."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z"], capture_output=True, cwd=REPO)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    sizes = {name: (REPO / name).stat().st_size for name in listed.stdout.decode().split("\0") if name}
    assert len(sizes) > 100
    assert {name: size for name, size in sizes.items() if size > 2048 * 1024} == {}
