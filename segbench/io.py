"""Atomic file writes and small readers shared by every stage.

Every result file is written to a temporary file in the same directory and renamed into place, so a
reader (a table rule, a report) never sees a half-written file, even after ``kill -9``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from segbench.errors import InputError

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting and restoring it; serialised across threads)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The file gets the mode an ordinary ``open(path, "w")`` would give (0666 minus the umask, typically
    0644), not ``mkstemp``'s private 0600."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp_path = Path(tmp)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_with(path: str | os.PathLike[str], write: Callable[[Path], None], what: str = "file") -> None:
    """Write ``path`` atomically through ``write(tmp)`` (e.g. ``torch.save``, ``tifffile.imwrite``),
    turning a failed write into an ``OSError`` that names ``path``, not the temporary file: a library
    that reports a full disk as a ``RuntimeError`` (torch's ``inline_container.cc ... unexpected pos``)
    or a ``ValueError`` still ends as one line."""
    try:
        with atomic_path(path) as tmp:
            write(tmp)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OSError(
            errno.EIO, f"{what} write failed, disk full or unwritable? ({first[:200]})", str(path)
        ) from exc


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    except OSError as exc:
        if exc.filename is None or Path(exc.filename).name.startswith(f".{Path(path).name}."):  # not the tmp
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def dumps(obj: Any, *, source: str | os.PathLike[str] | None = None, **kwargs: Any) -> str:
    """``json.dumps`` with ``allow_nan=False``, the way every JSON segbench writes is made: a NaN or an
    infinity is one line naming the key (and ``source``, the file it was for), never a bare ``NaN``, which
    is not JSON. numpy scalars and arrays and paths are written as numbers, lists and strings."""
    kwargs.setdefault("default", _json_default)
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        found = non_finite(obj)
        if found is None:
            raise
        from segbench.errors import RunError

        where = f"{source}: " if source else ""
        key, value = found
        raise RunError(
            f"{where}not written: {key or 'the value'} is {value}, not a finite number (JSON has no "
            "NaN or Infinity); find what produced it (a diverged run, an empty evaluation) and rerun"
        ) from None


def non_finite(obj: Any, key: str = "") -> tuple[str, float] | None:
    """``(dotted key, value)`` of the first NaN or infinity in ``obj`` (dicts, lists, numpy), else None."""
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalar or array
        obj = obj.tolist()
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (key, obj)
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for name, value in items:
        found = non_finite(value, f"{key}.{name}" if key else str(name))
        if found is not None:
            return found
    return None


def json_text(obj: Any, source: str | os.PathLike[str] | None = None) -> str:
    """``obj`` as the text :func:`write_json_atomic` writes: indented, key-sorted JSON plus a newline."""
    return dumps(obj, source=source, indent=2, sort_keys=True) + "\n"


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (byte-stable for the same content); refuses NaN."""
    write_text_atomic(path, json_text(obj, source=path))


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """Read JSON, turning a missing or malformed file into a one-line :class:`InputError`."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: {what} not found; check the path (or run the stage that produces it)")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: malformed {what} ({exc}); regenerate or fix the file") from None


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line (used for training logs; a torn last line is skipped by readers). A log must
    not stop a run: a non-finite number in it (the loss is checked before it is logged) is written as null."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = dumps(finite_or_null(record), source=p, sort_keys=True)
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every NaN or infinity (numpy ones too) replaced by None."""
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines log, ignoring a torn final line left by an interrupted writer."""
    records = []
    p = Path(path)
    if not p.exists():
        return records
    for line in p.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


HASH_CHUNK = 1 << 20


def hash_file(path: str | os.PathLike[str], algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of ``path`` for each of ``algorithms``, in one read."""
    digests = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(HASH_CHUNK), b""):
            for digest in digests.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def sha256_file(path: str | os.PathLike[str]) -> str:
    return hash_file(path)["sha256"]


@contextlib.contextmanager
def waiting_lock(folder: str | os.PathLike[str], name: str) -> Iterator[None]:
    """An exclusive, blocking ``flock`` on ``<folder>/.<name>.lock`` (created if needed): a second process
    waits, then finds the work done. The kernel releases it when the holder dies (kill -9)."""
    import fcntl

    Path(folder).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(folder) / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
