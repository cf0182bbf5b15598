"""Dataset content hashes: check a prepared dataset against its MANIFEST cheaply, and name it by one hash.

A MANIFEST lists every file with its sha256 and size and carries ``dataset_sha256``, the hash of the
sorted ``path sha256`` lines: the dataset's identity, recorded in the provenance of every run trained or
evaluated on it (never in the config hash, which stays the identity of the *experiment*). The MANIFEST
stays byte-stable (same seed, same bytes), so it records no times; instead its own modification time is
the reference: :func:`check` trusts a file whose size matches and that is older than the MANIFEST, and
re-hashes the others (or all, with ``full``). When every re-hashed file matched and all are more than a
second old, the MANIFEST's mtime is bumped (best effort), so the next check is fast again. A change that
keeps the size and sets the mtime back is found only by ``full`` (``--verify``, ``segbench data verify``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segbench.paths import relative_child

log = logging.getLogger(__name__)


def dataset_sha256(files: dict[str, dict[str, Any]]) -> str:
    """The hash of a dataset: sha256 over its sorted ``<relative path> <sha256>`` lines."""
    lines = "".join(f"{rel} {files[rel]['sha256']}\n" for rel in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    from segbench.data.download import sha256_file

    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


@dataclass
class Check:
    """The outcome of :func:`check`: the first changed file (``None`` when intact) and why."""

    root: Path
    manifest: dict[str, Any]
    changed: Path | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.changed is None

    @property
    def sha256(self) -> str:
        return manifest_sha256(self.manifest)


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """The dataset's hash as its MANIFEST records it (or as computed from its file list)."""
    return manifest.get("dataset_sha256") or dataset_sha256(manifest["files"])


def check(root: Path, manifest: dict[str, Any], *, full: bool = False) -> Check:
    """Compare the files under ``root`` with ``manifest`` (fast path: size, and mtime older than the
    MANIFEST's; sha256 for the others, or for all with ``full``)."""
    from segbench.data.download import sha256_file
    from segbench.data.preparation import MANIFEST

    try:
        reference = (root / MANIFEST).stat().st_mtime_ns
    except OSError:
        reference = -1
    hashed, newest = 0, 0
    for rel, record in manifest["files"].items():
        path = relative_child(root, rel, what="MANIFEST entry", source=root / MANIFEST)
        try:
            st = path.stat()
        except FileNotFoundError:
            return Check(root, manifest, path, "is missing")
        if st.st_size != record.get("bytes"):
            return Check(
                root, manifest, path, f"has {st.st_size} bytes, the MANIFEST records {record.get('bytes')}"
            )
        newest = max(newest, st.st_mtime_ns)
        if full or st.st_mtime_ns >= reference:
            if sha256_file(path) != record["sha256"]:
                return Check(root, manifest, path, "does not match its sha256 in the MANIFEST")
            hashed += 1
    if hashed and reference >= 0 and newest < time.time_ns() - 1_000_000_000:
        _touch(root / MANIFEST)
    return Check(root, manifest)


def _touch(manifest_path: Path) -> None:
    """Make the MANIFEST newer than the files just re-hashed (best effort: a read-only root stays slow)."""
    try:
        os.utime(manifest_path)
    except OSError as exc:
        log.debug("cannot refresh the mtime of %s: %s", manifest_path, exc)
