"""Downloads against a loopback HTTP server on 127.0.0.1 (never the internet; it shuts itself down after
a minute at most): resume, automatic retry after a dropped connection, bounded retries, progress lines,
checksum mismatch (published md5 and trust-on-first-use sha256), the free-space check, zip extraction,
and a real-format dataset prepared end to end through the CLI."""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import threading
import zipfile
from collections import namedtuple

import pytest

from segbench import data
from segbench.cli import main
from segbench.data import registry
from segbench.data.download import Progress, download, extract_zip, fetch
from segbench.data.preparation import ARCHIVES
from segbench.errors import InputError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


class Server:
    """A loopback server: ``files[path] = bytes``; ``truncate`` (a set of paths) cuts those responses
    in half while still announcing the full length, ``drop_once`` does so for the next response only;
    ``no_length`` (a set of paths) sends those without ``Content-Length`` (the body ends when the
    connection closes); ``ranges`` records the Range headers received. It stops by itself after ``LIFETIME_S``."""

    LIFETIME_S = 60.0

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.drop_once: set[str] = set()
        self.no_length: set[str] = set()
        self.refuse_ranges = False
        self.ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                server.ranges.append(header)
                start = int(header.split("=")[1].split("-")[0]) if header else 0
                if start >= len(body) or (header and server.refuse_ranges):
                    self.send_error(416)
                    return
                self.send_response(206 if header else 200)
                if header:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                if self.path not in server.no_length:
                    self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                rest = body[start:]
                cut = self.path in server.truncate or self.path in server.drop_once
                server.drop_once.discard(self.path)
                self.wfile.write(rest[: len(rest) // 2] if cut else rest)
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.stopper = threading.Timer(self.LIFETIME_S, self.httpd.shutdown)
        self.stopper.daemon = True
        self.stopper.start()

    def close(self) -> None:
        self.stopper.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def test_download_verifies_and_resumes(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:30000])
    assert download(server.base + "/a.bin", dest, sha256=sha(PAYLOAD), progress=False, timeout=5) == sha(
        PAYLOAD
    )
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "a.bin.part").exists()
    assert server.ranges == ["bytes=30000-"]
    download(server.base + "/a.bin", dest, sha256=sha(PAYLOAD), progress=False, timeout=5)
    assert len(server.ranges) == 1  # a complete, verified file is not fetched again


def test_truncated_download_keeps_part_and_resumes(server, tmp_path):
    server.files["/t.bin"] = PAYLOAD
    server.truncate.add("/t.bin")
    dest = tmp_path / "t.bin"
    with pytest.raises(InputError, match=r"t\.bin.*(truncated|interrupted).*\.part") as err:
        download(server.base + "/t.bin", dest, sha256=sha(PAYLOAD), progress=False, timeout=5, retries=0)
    assert "\n" not in str(err.value)
    part = tmp_path / "t.bin.part"
    assert 0 < part.stat().st_size < len(PAYLOAD) and not dest.exists()
    server.truncate.clear()
    download(server.base + "/t.bin", dest, sha256=sha(PAYLOAD), progress=False, timeout=5)
    assert dest.read_bytes() == PAYLOAD and server.ranges[-1] == f"bytes={len(PAYLOAD) // 2}-"


def test_checksum_mismatch_names_the_file(server, tmp_path):
    server.files["/m.bin"] = PAYLOAD
    with pytest.raises(InputError, match=r"m\.bin: checksum mismatch") as err:
        download(server.base + "/m.bin", tmp_path / "m.bin", sha256="0" * 64, progress=False, timeout=5)
    assert "\n" not in str(err.value)
    assert f"expected sha256 {'0' * 64}" in str(err.value) and f"got sha256 {sha(PAYLOAD)}" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_extract_zip_refuses_paths_outside(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escaped.txt", "x")
    with pytest.raises(InputError, match="escapes"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def use_registry(tmp_path, monkeypatch, server, extra: str = "") -> None:
    """A one-dataset registry (``toy_cells``, one zip) with ``extra`` keys on its download."""
    registry_file = tmp_path / "datasets.yaml"
    registry_file.write_text(f"""
datasets:
  toy_cells:
    source: real
    format: ctc
    downloads: [{{url: "{server.base}/Toy-Cells.zip", file: Toy-Cells.zip, sha256: null, extract: true{extra}}}]
    layout:
      sequences: [{{images: Toy-Cells/01, gt_seg: Toy-Cells/01_GT/SEG}}]
""")
    monkeypatch.setattr(registry, "DATASETS_YAML", registry_file)


def ctc_zip(top: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"{top}/01/t000.tif", b"raw")
        zf.writestr(f"{top}/01_GT/SEG/man_seg000.tif", b"seg")
    return buffer.getvalue()


def test_prepare_downloads_extracts_and_records_checksums(server, tmp_path, monkeypatch):
    blob = ctc_zip("Toy-Cells")
    server.files["/Toy-Cells.zip"] = blob
    use_registry(tmp_path, monkeypatch, server)
    root = tmp_path / "data"
    target = data.prepare("toy_cells", root, progress=False)
    (sequence,) = data.dataset_paths("toy_cells", root)["sequences"]
    assert (sequence["gt_seg"] / "man_seg000.tif").read_bytes() == b"seg"
    manifest = data.read_manifest(target)
    assert manifest["archives"]["Toy-Cells.zip"]["sha256"] == sha(blob)
    assert manifest["archives"]["Toy-Cells.zip"]["trust"] == "trust on first use"
    assert set(manifest["files"]) == {"Toy-Cells/01/t000.tif", "Toy-Cells/01_GT/SEG/man_seg000.tif"}
    data.prepare("toy_cells", root, progress=False)
    assert len(server.ranges) == 1  # present and intact: not downloaded again
    assert data.verify("toy_cells", root)["files"] == manifest["files"]


# -- retries, progress -------------------------------------------------------------------------------------
def test_dropped_connection_is_resumed_with_range_and_reported(server, tmp_path):
    server.files["/d.bin"] = PAYLOAD
    server.drop_once.add("/d.bin")
    log, waits = io.StringIO(), []
    got = fetch(
        server.base + "/d.bin",
        tmp_path / "d.bin",
        sha256=sha(PAYLOAD),
        progress=log,
        timeout=5,
        backoff=0.5,
        sleep=waits.append,
    )
    assert got.sha256 == sha(PAYLOAD) and (tmp_path / "d.bin").read_bytes() == PAYLOAD
    assert server.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]  # the retry resumed where the drop left off
    assert waits == [0.5]
    text = log.getvalue()
    assert "retrying in" in text and "resuming at" in text and text.rstrip().endswith("done")
    assert "\r" not in text  # not a terminal: plain lines


def test_retries_are_bounded_and_back_off(server, tmp_path):
    server.files["/t.bin"] = PAYLOAD
    server.truncate.add("/t.bin")
    waits = []
    with pytest.raises(
        InputError, match=r"t\.bin: truncated download .* after 4 attempt\(s\); partial file kept"
    ):
        fetch(
            server.base + "/t.bin",
            tmp_path / "t.bin",
            sha256=sha(PAYLOAD),
            progress=False,
            timeout=5,
            retries=3,
            backoff=1.0,
            sleep=waits.append,
        )
    assert waits == [1.0, 2.0, 4.0] and len(server.ranges) == 4
    assert 0 < (tmp_path / "t.bin.part").stat().st_size < len(PAYLOAD)


def test_progress_lines_show_bytes_rate_and_eta():
    now = [0.0]
    log = io.StringIO()
    meter = Progress("x.zip", log, every_s=10.0, clock=lambda: now[0])
    meter.start(100 * 2**20, 0)
    for second in range(1, 31):
        now[0] = float(second)
        meter.update(second * 2**20)  # 1 MiB/s
    meter.done()
    lines = log.getvalue().splitlines()
    assert lines[0] == "x.zip: downloading 100.0 MiB"
    assert lines[1] == "x.zip: 10.0 MiB of 100.0 MiB (10%), 1.0 MiB/s, ETA 1m30s"
    assert len(lines) == 5 and lines[-1].endswith("ETA 1m10s, done")


# -- published checksums, trust on first use, free space ---------------------------------------------------
def test_corrupted_archive_is_refused_and_nothing_is_ready(server, tmp_path, monkeypatch, capsys):
    good = ctc_zip("Toy-Cells")
    published = hashlib.md5(good).hexdigest()
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    server.files["/Toy-Cells.zip"] = bytes(corrupt)
    use_registry(tmp_path, monkeypatch, server, extra=f", md5: {published}")
    root = tmp_path / "data"
    assert main(["data", "prepare", "toy_cells", "--data-root", str(root)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("segbench: error:")]
    assert len(errors) == 1
    assert (
        f"Toy-Cells.zip: checksum mismatch: expected md5 {published} (published, datasets.yaml), "
        f"got md5 {hashlib.md5(bytes(corrupt)).hexdigest()}"
    ) in errors[0]
    target = root / "toy_cells"
    assert not (target / data.MANIFEST).exists() and not (target / "Toy-Cells").exists()
    assert not list(target.rglob("*.zip*"))  # the corrupt copy is gone, .part included
    with pytest.raises(InputError, match="not found"):
        data.dataset_paths("toy_cells", root)

    server.files["/Toy-Cells.zip"] = (
        good  # the publisher's bytes: accepted, and said to be checked against md5
    )
    assert main(["data", "prepare", "toy_cells", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"Toy-Cells.zip: md5 {published} published (datasets.yaml), matched at download" in out
    assert (target / data.MANIFEST).exists()
    record = json.loads((target / ARCHIVES).read_text())["Toy-Cells.zip"]
    assert record["md5"] == published and record["sha256"] == sha(good) and record["trust"] == "published"
    assert main(["data", "verify", "toy_cells", "--data-root", str(root)]) == 0
    assert "published (datasets.yaml)" in capsys.readouterr().out


def test_trust_on_first_use_records_sha256_and_checks_later_downloads(server, tmp_path, monkeypatch, capsys):
    first = ctc_zip("Toy-Cells")
    server.files["/Toy-Cells.zip"] = first
    use_registry(tmp_path, monkeypatch, server)
    root = tmp_path / "data"
    assert main(["data", "download", "toy_cells", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"no published checksum; sha256 {sha(first)} recorded at the first download" in out
    assert "trust on first use" in out
    server.files["/Toy-Cells.zip"] = changed = ctc_zip("Toy-Cells") + b"appended"
    assert main(["data", "prepare", "toy_cells", "--force", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert (
        f"expected sha256 {sha(first)} (recorded at the first download" in err
        and f"got sha256 {sha(changed)}" in err
    )
    assert not (
        root / "toy_cells" / data.MANIFEST
    ).exists()  # --force unmarked it; the bad copy did not re-mark it


def test_disk_space_shortfall_is_refused_before_downloading(server, tmp_path, monkeypatch):
    server.files["/Toy-Cells.zip"] = ctc_zip("Toy-Cells")
    use_registry(tmp_path, monkeypatch, server, extra=", size_bytes: 3000000000, extracted_bytes: 5000000000")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 6 * 2**30, 4 * 2**30))
    with pytest.raises(
        InputError, match=r"dataset 'toy_cells': needs 7\.5 GiB free in .*only 4\.0 GiB free"
    ) as err:
        data.prepare("toy_cells", tmp_path / "data", progress=False)
    assert "archives 2.8 GiB + extracted 4.7 GiB" in str(err.value)
    assert server.ranges == []  # nothing was requested


def test_a_server_refusing_to_resume_means_starting_over(server, tmp_path):
    server.files["/r.bin"] = PAYLOAD
    server.drop_once.add("/r.bin")
    server.refuse_ranges = True  # answers 416 to any Range request
    fetch(
        server.base + "/r.bin",
        tmp_path / "r.bin",
        sha256=sha(PAYLOAD),
        progress=False,
        timeout=5,
        backoff=0.0,
        sleep=lambda s: None,
    )
    assert (tmp_path / "r.bin").read_bytes() == PAYLOAD
    assert server.ranges == [None, f"bytes={len(PAYLOAD) // 2}-", None]


# -- round three (#36): a stale partial, trust on first use, a full disk ---------------------------------
def test_security_a_part_longer_than_the_file_restarts_from_zero(server, tmp_path):
    """No published checksum and a ``.part`` longer than the server's file: the server answers 416; the
    stale bytes are dropped and the whole file fetched again (it used to be kept as complete)."""
    server.files["/s.bin"] = PAYLOAD
    (tmp_path / "s.bin.part").write_bytes(PAYLOAD + b"stale" * 760)
    got = fetch(server.base + "/s.bin", tmp_path / "s.bin", progress=False, timeout=5, sleep=pytest.fail)
    assert (tmp_path / "s.bin").read_bytes() == PAYLOAD and got.complete
    assert got.server_bytes == len(PAYLOAD) and got.sha256 == sha(PAYLOAD)
    assert server.ranges == [f"bytes={len(PAYLOAD) + 3800}-", None]


def test_security_a_416_restarts_from_zero_even_for_a_part_of_the_right_length(server, tmp_path):
    server.files["/e.bin"] = PAYLOAD
    (tmp_path / "e.bin.part").write_bytes(bytes(len(PAYLOAD)))  # as long as the file, other bytes
    got = fetch(server.base + "/e.bin", tmp_path / "e.bin", progress=False, timeout=5, sleep=pytest.fail)
    assert got.sha256 == sha(PAYLOAD) and server.ranges == [f"bytes={len(PAYLOAD)}-", None]


def test_security_a_stale_part_never_becomes_the_trusted_checksum(server, tmp_path, monkeypatch, capsys):
    """The issue's case through the CLI: ARCHIVES.json records the server's file, not the stale copy."""
    blob = ctc_zip("Toy-Cells")
    server.files["/Toy-Cells.zip"] = blob
    use_registry(tmp_path, monkeypatch, server)
    root = tmp_path / "data"
    part = root / "toy_cells" / "downloads" / "Toy-Cells.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(blob + b"\0" * 3800)
    assert main(["data", "download", "toy_cells", "--data-root", str(root)]) == 0, capsys.readouterr().err
    record = json.loads((root / "toy_cells" / ARCHIVES).read_text())["Toy-Cells.zip"]
    assert record["sha256"] == sha(blob) and record["bytes"] == len(blob)


def test_security_trust_on_first_use_needs_the_servers_size(server, tmp_path, monkeypatch, capsys):
    """Without ``Content-Length`` a download cannot be known complete: nothing is trusted or kept."""
    server.files["/Toy-Cells.zip"] = ctc_zip("Toy-Cells")
    server.no_length.add("/Toy-Cells.zip")
    use_registry(tmp_path, monkeypatch, server)
    root = tmp_path / "data"
    assert main(["data", "download", "toy_cells", "--data-root", str(root)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("segbench: error:")]
    assert len(errors) == 1 and "announced no size" in errors[0] and "not trusted on first use" in errors[0]
    target = root / "toy_cells"
    assert not (target / ARCHIVES).exists() and not list(target.rglob("*.zip*"))
    assert not (target / data.MANIFEST).exists()


def test_security_a_published_checksum_needs_no_content_length(server, tmp_path):
    server.files["/n.bin"] = PAYLOAD
    server.no_length.add("/n.bin")
    got = fetch(server.base + "/n.bin", tmp_path / "n.bin", sha256=sha(PAYLOAD), progress=False, timeout=5)
    assert got.sha256 == sha(PAYLOAD) and got.server_bytes is None and not got.complete


class _FullDisk:
    """A file object that takes ``room`` bytes, then fails with ENOSPC (as a full file system does)."""

    def __init__(self, path, mode: str, room: int) -> None:
        self.fh, self.room = open(path, mode), room  # noqa: SIM115 - closed in __exit__

    def write(self, block: bytes) -> int:
        if len(block) > self.room:
            self.fh.write(block[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(block)
        return self.fh.write(block)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()


def _full_disk(monkeypatch, room: int = 1000) -> None:
    from segbench.data import download as download_module

    monkeypatch.setattr(
        download_module, "open", lambda path, mode="r": _FullDisk(path, mode, room), raising=False
    )


@pytest.mark.parametrize("length", [True, False], ids=["content_length", "no_content_length"])
def test_fault_disk_full_during_a_download_is_named_and_not_retried(server, tmp_path, monkeypatch, length):
    server.files["/f.bin"] = PAYLOAD
    if not length:
        server.no_length.add("/f.bin")
    _full_disk(monkeypatch)
    with pytest.raises(InputError) as err:
        fetch(server.base + "/f.bin", tmp_path / "f.bin", progress=False, timeout=5, sleep=pytest.fail)
    message = str(err.value)
    assert re.search(rf"f\.bin: disk full at {re.escape(str(tmp_path))}, \d+ bytes free", message), message
    assert "partial download was removed" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no .part left filling the disk
    assert len(server.ranges) == 1  # no retries


def test_fault_disk_full_during_a_download_through_the_cli(server, tmp_path, monkeypatch, capsys):
    """The issue's case: no Content-Length, a full disk: one line saying so, no .part, no 4 retries."""
    server.files["/Toy-Cells.zip"] = ctc_zip("Toy-Cells")
    server.no_length.add("/Toy-Cells.zip")
    use_registry(tmp_path, monkeypatch, server)
    _full_disk(monkeypatch, room=10)
    root = tmp_path / "data"
    assert main(["data", "download", "toy_cells", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("segbench: error:")]
    assert len(errors) == 1 and "disk full at" in errors[0] and "retrying" not in err, err
    assert not list((root / "toy_cells").rglob("*.part")) and len(server.ranges) == 1
