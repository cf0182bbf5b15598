"""Resumable, retried, verified HTTP downloads, a free-space check, and atomic zip extraction.

A download streams into ``<file>.part``. A transfer that stops short (connection reset, timeout,
truncated body) is retried with bounded exponential backoff, each retry resuming the ``.part`` file with
an HTTP ``Range`` request; after the last retry the ``.part`` file is kept and the next call resumes it.
The finished file is hashed (sha256 always, md5 where a published md5 is to be checked) and compared with
the expected checksum *before* it is renamed into place, so a file without ``.part`` is always complete
and verified. A mismatch removes the copy and raises a one-line :class:`InputError` naming the file and
the expected and actual checksums.

Progress (bytes, rate, ETA) goes to stderr: one self-overwriting line on a terminal, plain lines every
few seconds otherwise (CI logs, ``| tee``). Only the standard library is used.
"""

from __future__ import annotations

import errno
import http.client
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from segbench.errors import InputError
from segbench.io import hash_file, sha256_file  # noqa: F401 - re-exported: the data layer's checksums

CHUNK = 1 << 20
USER_AGENT = "segbench-data/0.1"
RETRIES = 4  # attempts after the first, for transient failures
BACKOFF_S = 2.0  # first wait; doubled each retry
MAX_BACKOFF_S = 60.0
RETRY_HTTP = {408, 429, 500, 502, 503, 504}
LINE_EVERY_S = 10.0  # progress line interval when stderr is not a terminal


@dataclass(frozen=True)
class Fetched:
    """A downloaded, verified file: where it is, its size, its checksums and the size the server announced
    for the whole file (``Content-Length`` of a full response, the total of a ``Content-Range``; None where
    it announced none, or where an earlier, verified copy was used)."""

    path: Path
    bytes: int
    sha256: str
    md5: str
    server_bytes: int | None = None

    @property
    def complete(self) -> bool:
        """Whether the file is exactly as long as the server said: what trust on first use requires."""
        return self.server_bytes is not None and self.bytes == self.server_bytes


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool | TextIO = True,
    timeout: float = 60.0,
    fix: str = "rerun the command to resume",
    retries: int | None = None,
    backoff: float | None = None,
    expected_from: str = "",
) -> str:
    """Fetch ``url`` into ``dest`` (resuming ``dest.part``) and return the file's sha256.

    See :func:`fetch`, which also returns the size and md5.
    """
    return fetch(
        url,
        dest,
        sha256=sha256,
        md5=md5,
        progress=progress,
        timeout=timeout,
        fix=fix,
        retries=retries,
        backoff=backoff,
        expected_from=expected_from,
    ).sha256


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool | TextIO = True,
    timeout: float = 60.0,
    fix: str = "rerun the command to resume",
    retries: int | None = None,
    backoff: float | None = None,
    expected_from: str = "",
    sleep: Callable[[float], None] | None = None,
) -> Fetched:
    """Fetch ``url`` into ``dest`` and verify it against ``sha256`` and/or ``md5`` where given.

    A complete ``dest`` whose checksums match is not fetched again (a mismatching one is replaced; without
    a checksum to check it against, it is fetched again). A ``.part`` longer than the server's file, or
    a resume the server answers with HTTP 416, starts over from zero. A full disk is one line ("disk full
    at <folder>, N bytes free"), the partial file removed and no retry.
    Transient failures are retried ``retries`` times (waits ``backoff``, 2x, 4x ... capped at
    :data:`MAX_BACKOFF_S`), each resuming with a ``Range`` request; after the last one the ``.part`` file
    is kept and :class:`InputError` says how to resume (defaults: :data:`RETRIES`, :data:`BACKOFF_S`,
    read at call time). A checksum mismatch removes the copy and raises
    :class:`InputError`. ``expected_from`` (e.g. "published, datasets.yaml") is quoted in that error.
    ``progress``: False, True (stderr) or a text stream.
    """
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF_S if backoff is None else backoff
    sleep = time.sleep if sleep is None else sleep
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    algorithms = ("sha256", "md5") if md5 else ("sha256",)
    if dest.is_file() and (sha256 or md5):
        digests = hash_file(dest, algorithms)
        if _mismatch(digests, sha256, md5) is None:
            return Fetched(dest, dest.stat().st_size, digests["sha256"], digests.get("md5", ""))
    dest.unlink(missing_ok=True)
    part = dest.with_name(dest.name + ".part")
    stream = None if progress is False else (sys.stderr if progress is True else progress)
    meter = Progress(dest.name, stream)
    attempt = 0
    while True:
        try:
            server_bytes = _fetch_into(url, part, timeout=timeout, meter=meter)
            break
        except _Transient as exc:
            if attempt >= retries:
                kept = f"partial file kept as {part}, " if part.exists() and part.stat().st_size else ""
                raise InputError(f"{dest.name}: {exc} after {attempt + 1} attempt(s); {kept}{fix}") from None
            wait = min(backoff * 2**attempt, MAX_BACKOFF_S)
            meter.note(f"{exc}; retrying in {wait:g} s (retry {attempt + 1} of {retries})")
            sleep(wait)
            attempt += 1
    meter.done()
    digests = hash_file(part, algorithms)
    problem = _mismatch(digests, sha256, md5)
    if problem is not None:
        part.unlink()
        algo, expected, actual = problem
        source = f" ({expected_from})" if expected_from else ""
        raise InputError(
            f"{dest.name}: checksum mismatch: expected {algo} {expected}{source}, got {algo} {actual} "
            f"from {url}; the corrupt copy was removed, {fix}"
        )
    os.replace(part, dest)
    return Fetched(dest, dest.stat().st_size, digests["sha256"], digests.get("md5", ""), server_bytes)


def _mismatch(digests: dict[str, str], sha256: str | None, md5: str | None) -> tuple[str, str, str] | None:
    for algo, expected in (("md5", md5), ("sha256", sha256)):
        if expected and digests[algo] != expected.lower():
            return algo, expected.lower(), digests[algo]
    return None


class _Transient(Exception):
    """A failure worth retrying: the connection dropped, timed out or the server was briefly unavailable."""


def _fetch_into(url: str, part: Path, *, timeout: float, meter: Progress, restart: bool = True) -> int | None:
    """Append the rest of ``url`` to ``part``; return the size the server announced for the whole file
    (None if it announced none). Raise :class:`_Transient` if the transfer stops short. A resume the server
    refuses (HTTP 416: the ``.part`` is as long as the file or longer, so it is stale) or answers from
    another byte starts over from zero, once."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return _start_over(url, part, timeout, meter, restart, f"HTTP 416 for a resume at byte {have}")
        if exc.code in RETRY_HTTP:
            raise _Transient(f"HTTP {exc.code} from {url}") from None
        raise InputError(
            f"{part.name[:-5]}: HTTP {exc.code} from {url}; check the URL in datasets.yaml"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Transient(f"cannot reach {url} ({reason})") from None
    with response:
        start, size = content_range(response.headers.get("Content-Range"))
        if have and response.status != 206:  # the server ignored the Range header: start over
            have = 0
        elif have and (start != have or (size is not None and have >= size)):
            response.close()
            return _start_over(url, part, timeout, meter, restart, f"the server resumed at byte {start}")
        remaining = response.length  # bytes the server promised for this response (None if unknown)
        total = size if have and size is not None else (have + remaining if remaining is not None else None)
        if remaining:
            check_free_space(part.parent, remaining, what=part.name[:-5])
        received = _stream(response, part, have, total, meter)
    if total is not None and received < total:
        raise _Transient(f"truncated download ({received} of {total} bytes)")
    return total


def content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, whole size) of ``Content-Range: bytes 100-199/200``; None for what it does not give."""
    unit, _, spec = (header or "").partition(" ")
    first, _, size = spec.partition("/")
    start = first.split("-")[0]
    if unit != "bytes":
        return None, None
    return (int(start) if start.isdigit() else None), (int(size) if size.isdigit() else None)


def _start_over(url: str, part: Path, timeout: float, meter: Progress, restart: bool, why: str) -> int | None:
    part.unlink(missing_ok=True)
    if not restart:
        raise _Transient(f"{why} again after starting over")
    meter.note(f"{why}: the partial file is stale, starting over from zero")
    return _fetch_into(url, part, timeout=timeout, meter=meter, restart=False)


def _stream(
    response: http.client.HTTPResponse, part: Path, have: int, total: int | None, meter: Progress
) -> int:
    """Write the body of ``response`` to ``part`` (appending after ``have`` bytes); returns the bytes it
    holds. A dropped connection is :class:`_Transient`; a full disk removes ``part`` and is one line."""
    received = have
    meter.start(total, have)
    try:
        with open(part, "ab" if have else "wb") as fh:
            while True:
                try:
                    block = response.read(CHUNK)
                except (http.client.IncompleteRead, OSError) as exc:  # resets and timeouts
                    raise _Transient(
                        f"download interrupted after {received} of {total or '?'} bytes ({type(exc).__name__})"
                    ) from None
                if not block:
                    return received
                fh.write(block)
                received += len(block)
                meter.update(received)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        free = shutil.disk_usage(part.parent).free
        part.unlink(missing_ok=True)
        size = f"{total} bytes" if total is not None else "a size the server did not announce"
        raise InputError(
            f"{part.name[:-5]}: disk full at {part.parent}, {free} bytes free (after {received} bytes of "
            f"{size}); the partial download was removed; free some space or choose another data root "
            "(--data-root or SEGBENCH_DATA), then rerun"
        ) from None


# -- free space ----------------------------------------------------------------------------------------
def human_bytes(n: float | None) -> str:
    if n is None:
        return "? B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_free_space(where: str | os.PathLike[str], needed: int, *, what: str, detail: str = "") -> None:
    """Raise :class:`InputError` before anything is written if the file system holding ``where`` (or its
    nearest existing parent) has less than ``needed`` bytes free."""
    probe = Path(where)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        extra = f" ({detail})" if detail else ""
        raise InputError(
            f"{what}: needs {human_bytes(needed)} free in {probe}{extra}, only {human_bytes(free)} "
            "free; free some space or choose another data root (--data-root or SEGBENCH_DATA)"
        )


# -- progress --------------------------------------------------------------------------------------------
class Progress:
    """Bytes, rate and ETA of one download on ``stream``: a self-overwriting line on a terminal, a plain
    line every :data:`LINE_EVERY_S` seconds otherwise; nothing when ``stream`` is None."""

    def __init__(
        self,
        name: str,
        stream: TextIO | None,
        *,
        every_s: float = LINE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.stream, self.every_s, self.clock = name, stream, every_s, clock
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.total: int | None = None
        self.received = self.start_bytes = 0
        self.t0 = self.last = clock()
        self.started = False

    def start(self, total: int | None, have: int) -> None:
        self.total, self.received, self.start_bytes = total, have, have
        self.t0 = self.last = self.clock()
        if not self.started:
            resumed = f", resuming at {human_bytes(have)}" if have else ""
            self._emit(f"{self.name}: downloading {human_bytes(total)}{resumed}", final=True)
            self.started = True
        elif have:
            self._emit(
                f"{self.name}: resuming at {human_bytes(have)} of {human_bytes(total)} (HTTP Range)",
                final=True,
            )

    def update(self, received: int) -> None:
        self.received = received
        now = self.clock()
        if now - self.last >= (0.5 if self.tty else self.every_s):
            self.last = now
            self._emit(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now if now is not None else self.clock()) - self.t0, 1e-9)
        rate = (self.received - self.start_bytes) / elapsed
        if self.total:
            pct = f" ({100.0 * self.received / self.total:.0f}%)"
            eta = f", ETA {_duration((self.total - self.received) / rate)}" if rate > 0 else ", ETA ?"
        else:
            pct, eta = "", ""
        return (
            f"{self.name}: {human_bytes(self.received)} of {human_bytes(self.total)}{pct}, "
            f"{human_bytes(rate)}/s{eta}"
        )

    def note(self, message: str) -> None:
        self._emit(f"{self.name}: {message}", final=True)

    def done(self) -> None:
        if self.started:
            self._emit(self.line() + ", done", final=True)

    def _emit(self, text: str, final: bool = False) -> None:
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


# -- extraction ------------------------------------------------------------------------------------------
def extract_zip(archive: str | os.PathLike[str], dest_dir: str | os.PathLike[str]) -> list[Path]:
    """Extract ``archive`` into ``dest_dir`` atomically: everything is unpacked into a temporary directory
    beside the target first (checked for members escaping it and for free space), then each top-level
    entry is renamed into place, so an interrupted extraction leaves no partial tree. Returns the paths."""
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{archive.stem}-", dir=dest_dir))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                target = (tmp / member).resolve()
                if not target.is_relative_to(tmp.resolve()):
                    raise InputError(
                        f"{archive}: member {member!r} escapes the extraction directory; "
                        "the archive is unsafe, delete it and download again"
                    )
            check_free_space(
                tmp, sum(i.file_size for i in zf.infolist()), what=archive.name, detail="to extract it"
            )
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
        raise InputError(
            f"{archive}: not a valid zip archive ({exc}); delete it and download again"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
