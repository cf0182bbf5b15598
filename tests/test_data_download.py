"""Downloads against a loopback HTTP server (never the internet): resume, truncation, checksum mismatch,
zip extraction, and a real-format dataset prepared end to end."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from segbench import data
from segbench.data import registry
from segbench.data.download import download, extract_zip
from segbench.errors import InputError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


class Server:
    """A loopback server: ``files[path] = bytes``; ``truncate`` (a set of paths) cuts those responses
    in half while still announcing the full length; ``ranges`` records the Range headers received."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
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
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206 if header else 200)
                if header:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                rest = body[start:]
                self.wfile.write(rest[: len(rest) // 2] if self.path in server.truncate else rest)
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
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
    assert download(server.base + "/a.bin", dest, sha256=sha(PAYLOAD), progress=False, timeout=5) == sha(PAYLOAD)
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "a.bin.part").exists()
    assert server.ranges == ["bytes=30000-"]
    download(server.base + "/a.bin", dest, sha256=sha(PAYLOAD), progress=False, timeout=5)
    assert len(server.ranges) == 1  # a complete, verified file is not fetched again


def test_truncated_download_keeps_part_and_resumes(server, tmp_path):
    server.files["/t.bin"] = PAYLOAD
    server.truncate.add("/t.bin")
    dest = tmp_path / "t.bin"
    with pytest.raises(InputError, match=r"t\.bin.*(truncated|interrupted).*\.part") as err:
        download(server.base + "/t.bin", dest, sha256=sha(PAYLOAD), progress=False, timeout=5)
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
    assert list(tmp_path.iterdir()) == []


def test_extract_zip_refuses_paths_outside(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escaped.txt", "x")
    with pytest.raises(InputError, match="escapes"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def ctc_zip(top: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"{top}/01/t000.tif", b"raw")
        zf.writestr(f"{top}/01_GT/SEG/man_seg000.tif", b"seg")
    return buffer.getvalue()


def test_prepare_downloads_extracts_and_records_checksums(server, tmp_path, monkeypatch):
    blob = ctc_zip("Toy-Cells")
    server.files["/Toy-Cells.zip"] = blob
    registry_file = tmp_path / "datasets.yaml"
    registry_file.write_text(f"""
datasets:
  toy_cells:
    source: real
    format: ctc
    downloads: [{{url: "{server.base}/Toy-Cells.zip", file: Toy-Cells.zip, sha256: null, extract: true}}]
    layout:
      sequences: [{{images: Toy-Cells/01, gt_seg: Toy-Cells/01_GT/SEG}}]
""")
    monkeypatch.setattr(registry, "DATASETS_YAML", registry_file)
    root = tmp_path / "data"
    target = data.prepare("toy_cells", root, progress=False)
    (sequence,) = data.dataset_paths("toy_cells", root)["sequences"]
    assert (sequence["gt_seg"] / "man_seg000.tif").read_bytes() == b"seg"
    manifest = data.read_manifest(target)
    assert manifest["archives"] == {"Toy-Cells.zip": sha(blob)}
    assert set(manifest["files"]) == {"Toy-Cells/01/t000.tif", "Toy-Cells/01_GT/SEG/man_seg000.tif"}
    data.prepare("toy_cells", root, progress=False)
    assert len(server.ranges) == 1  # present and intact: not downloaded again
    assert data.verify("toy_cells", root)["files"] == manifest["files"]
