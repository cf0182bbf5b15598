"""Resumable HTTP downloads with sha256 verification, and safe zip extraction.

A download streams into ``<file>.part``; an interrupted or truncated transfer keeps that file and the next
call resumes it with an HTTP ``Range`` request. The finished file is checked against its sha256 (where
one is known) before it is renamed into place, so a file without ``.part`` is always complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from segbench.errors import InputError

CHUNK = 1 << 20
USER_AGENT = "segbench-data/0.1"


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike[str], *, sha256: str | None = None, progress: bool = True,
             timeout: float = 60.0, fix: str = "rerun the command to resume") -> str:
    """Fetch ``url`` into ``dest`` (resuming ``dest.part``) and return the file's sha256.

    A complete ``dest`` whose checksum matches is not fetched again. A truncated transfer raises
    :class:`InputError` and keeps the ``.part`` file for the next attempt; a checksum mismatch raises
    :class:`InputError` and removes the corrupt file. ``fix`` ends each error message.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        actual = sha256_file(dest)
        if sha256 is None or actual == sha256:
            return actual
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    _fetch_into(url, part, timeout=timeout, progress=progress, fix=fix)
    actual = sha256_file(part)
    if sha256 is not None and actual != sha256:
        part.unlink()
        raise InputError(f"{dest.name}: checksum mismatch (sha256 {actual}, expected {sha256}) for {url}; "
                         f"the corrupt copy was removed, {fix}")
    os.replace(part, dest)
    return actual


def _fetch_into(url: str, part: Path, *, timeout: float, progress: bool, fix: str) -> None:
    """Append the rest of ``url`` to ``part``; raise :class:`InputError` if the transfer stops short."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part file is already whole
            return
        raise InputError(f"{part.name[:-5]}: HTTP {exc.code} from {url}; check the URL or {fix}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"{part.name[:-5]}: cannot reach {url} ({exc}); check the network, then {fix}") from None
    with response:
        if have and response.status != 206:  # the server ignored the Range header: start over
            have = 0
        remaining = response.length  # bytes the server promised for this response (None if unknown)
        total = have + remaining if remaining is not None else None
        received = have
        with open(part, "ab" if have else "wb") as fh, _progress_bar(part.name[:-5], total, have, progress) as bar:
            try:
                while block := response.read(CHUNK):
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (http.client.IncompleteRead, OSError) as exc:  # OSError covers resets and timeouts
                raise InputError(f"{part.name[:-5]}: download interrupted after {received} of "
                                 f"{total or '?'} bytes ({type(exc).__name__}); partial file kept as "
                                 f"{part}, {fix}") from None
    if total is not None and received < total:
        raise InputError(f"{part.name[:-5]}: truncated download ({received} of {total} bytes); partial file kept "
                         f"as {part}, {fix}")


def _progress_bar(name: str, total: int | None, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                disable=None if enabled else True, leave=False)


def extract_zip(archive: str | os.PathLike[str], dest_dir: str | os.PathLike[str]) -> list[Path]:
    """Extract ``archive`` into ``dest_dir`` via a temporary directory beside it, then move the top-level
    entries into place (an interrupted extraction leaves no partial tree). Returns the moved paths."""
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{archive.stem}-", dir=dest_dir))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                target = (tmp / member).resolve()
                if not target.is_relative_to(tmp.resolve()):
                    raise InputError(f"{archive}: member {member!r} escapes the extraction directory; "
                                     "the archive is unsafe, delete it and download again")
            zf.extractall(tmp)
        moved = []
        for entry in sorted(tmp.iterdir()):
            target = dest_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(entry, target)
            moved.append(target)
        return moved
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive}: not a valid zip archive ({exc}); delete it and download again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
