"""Security properties: safe checkpoint loading, verified downloads, quoted shell commands, escaped HTML."""

from __future__ import annotations

import ast
import hashlib
import http.server
import json
import os
import re
import stat
import threading
from pathlib import Path

import pytest
import yaml
from test_reporting_fixtures import XSS, build_results

from segbench.cli import main
from segbench.data.download import download
from segbench.errors import InputError
from segbench.io import write_json_atomic, write_text_atomic
from segbench.paths import child_path, relative_child, run_dir
from segbench.registry import registry_path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "segbench"


# -- torch.load: always weights_only=True ------------------------------------------------------------------
def _torch_load_calls(tree: ast.AST) -> list[ast.Call]:
    """Calls of ``torch.load(...)`` (also through ``import torch as t`` or ``from torch import load``)."""
    torch_names, load_names = {"torch"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            torch_names |= {a.asname for a in node.names if a.name == "torch" and a.asname}
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            load_names |= {a.asname or a.name for a in node.names if a.name == "load"}
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if (
            isinstance(f, ast.Attribute)
            and f.attr == "load"
            and isinstance(f.value, ast.Name)
            and f.value.id in torch_names
        ) or (isinstance(f, ast.Name) and f.id in load_names):
            calls.append(node)
    return calls


def _weights_only_true(call: ast.Call) -> bool:
    return any(
        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def test_every_torch_load_uses_weights_only():
    calls, unsafe = 0, []
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in _torch_load_calls(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            calls += 1
            if not _weights_only_true(call):
                unsafe.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert calls > 0, "found no torch.load at all: the scan is broken"
    assert unsafe == [], f"torch.load without weights_only=True: {unsafe}"


@pytest.mark.parametrize(
    ("source", "safe"),
    [
        ("import torch\ntorch.load(p, weights_only=True)", True),
        ("import torch\ntorch.load(p)", False),
        ("import torch as t\nt.load(p, weights_only=False)", False),
        ("from torch import load\nload(p, map_location='cpu')", False),
        ("import torch\n# torch.load(p)\nx = 'torch.load(p)'", True),  # comments and strings are not calls
    ],
    ids=["safe", "default", "alias_false", "from_import", "comment_and_string"],
)
def test_the_scan_itself(source, safe):
    calls = _torch_load_calls(ast.parse(source))
    assert all(_weights_only_true(c) for c in calls) is safe


# -- downloads: sha256 verified before the file is moved into place --------------------------------------
@pytest.fixture
def server():
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield files, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_download_with_wrong_checksum_is_never_moved_into_place(server, tmp_path):
    files, base = server
    files["/volume.tif"] = b"tampered bytes" * 1000
    dest = tmp_path / "volume.tif"
    expected = hashlib.sha256(b"the publisher's bytes").hexdigest()
    with pytest.raises(InputError, match="checksum mismatch"):
        download(f"{base}/volume.tif", dest, sha256=expected, progress=False)
    assert sorted(tmp_path.iterdir()) == []  # neither the file nor its .part


def test_download_with_right_checksum_is_moved_into_place(server, tmp_path):
    files, base = server
    files["/volume.tif"] = blob = b"the publisher's bytes" * 1000
    dest = tmp_path / "volume.tif"
    assert download(f"{base}/volume.tif", dest, sha256=hashlib.sha256(blob).hexdigest(), progress=False)
    assert dest.read_bytes() == blob and sorted(tmp_path.iterdir()) == [dest]


def test_existing_file_with_wrong_checksum_is_replaced_not_used(server, tmp_path):
    files, base = server
    files["/volume.tif"] = blob = b"the publisher's bytes" * 1000
    dest = tmp_path / "volume.tif"
    dest.write_bytes(b"a stale or tampered copy")
    download(f"{base}/volume.tif", dest, sha256=hashlib.sha256(blob).hexdigest(), progress=False)
    assert dest.read_bytes() == blob


# -- shell commands quote every config- or wildcard-derived value ---------------------------------------
SHELL_BLOCK = re.compile(r"^(\s*)shell:\s*\n((?:\1\s+.*\n?)+)", re.MULTILINE)
PLACEHOLDER = re.compile(r"(?<!\{)\{((?:params|wildcards)\.\w+|log(?:\.\w+)?)(:[^}]*)?\}(?!\})")


def _shell_commands() -> list[tuple[str, str]]:
    commands = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for match in SHELL_BLOCK.finditer(smk.read_text(encoding="utf-8")):
            commands.append((smk.name, match.group(2)))
    return commands


def test_shell_placeholders_are_quoted():
    commands = _shell_commands()
    assert len(commands) >= 6, "found too few shell commands: the scan is broken"
    found, unquoted = 0, []
    for name, command in commands:
        for match in PLACEHOLDER.finditer(command):
            found += 1
            if match.group(2) != ":q":
                unquoted.append(f"{name}: {match.group(0)}")
    assert found >= 20
    assert unquoted == [], f"shell placeholders without :q: {unquoted}"


@pytest.mark.parametrize(
    ("command", "bad"),
    [
        ('"segbench train --run {wildcards.run:q} > {log:q} 2>&1"', []),
        ('"segbench train --run {wildcards.run} > {log:q}"', ["{wildcards.run}"]),
        ('"segbench compare --seeds {params.seeds} --out {log}"', ["{params.seeds}", "{log}"]),
        ('f"{RESULTS}/{{wildcards.run}}"', []),  # an escaped brace in an f-string is not a placeholder
    ],
    ids=["quoted", "wildcard", "params_and_log", "escaped"],
)
def test_the_placeholder_scan_itself(command, bad):
    assert [m.group(0) for m in PLACEHOLDER.finditer(command) if m.group(2) != ":q"] == bad


# -- the HTML report escapes user strings -------------------------------------------------------------
def test_report_escapes_a_script_row_label(tmp_path, monkeypatch, capsys):
    reg = yaml.safe_load(registry_path().read_text(encoding="utf-8"))
    reg["tables"]["table2b"]["rows"][0]["label"] = XSS
    registry = tmp_path / "experiments.yaml"
    registry.write_text(yaml.safe_dump(reg, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("SEGBENCH_REGISTRY", str(registry))
    results, reports = tmp_path / "results", tmp_path / "reports"
    build_results(results, ("table2b",), "mini")
    code = main(
        [
            "report",
            "--scale",
            "mini",
            "--table",
            "table2b",
            "--no-figures",
            "--results",
            str(results),
            "--out",
            str(reports),
        ]
    )
    assert code == 0, capsys.readouterr().err
    page = (reports / "mini" / "table2b.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert XSS not in page
    assert XSS not in (reports / "mini" / "index.html").read_text(encoding="utf-8")


# -- names read from files never become paths outside their root -----------------------------------------
@pytest.mark.parametrize(
    "name",
    ["../../../x", "..", "/etc/x", "a/b", "a\\b", "x\x00y", ""],
    ids=["dotdot", "parent", "absolute", "slash", "backslash", "nul", "empty"],
)
def test_security_child_path_refuses_escaping_names(name, tmp_path):
    with pytest.raises(InputError, match="not a plain file name"):
        child_path(tmp_path, name, ".html", what="table", source=tmp_path / "t.json")


@pytest.mark.parametrize("name", ["table2b", "r50_c4-seed0", "unet_isbi+dice_weighted_ce-seed1", "a.b"])
def test_security_child_path_keeps_plain_names(name, tmp_path):
    assert child_path(tmp_path, name, ".json").parent == tmp_path


def test_security_report_refuses_a_table_name_that_leaves_out(tmp_path, capsys):
    results, reports = tmp_path / "results", tmp_path / "a" / "b" / "reports"
    build_results(results, ("table2b",), "mini")
    table_json = results / "mini" / "tables" / "table2b.json"
    table = json.loads(table_json.read_text())
    table["table"] = "../../../x"
    table_json.write_text(json.dumps(table))
    code = main(
        ["report", "--scale", "mini", "--no-figures", "--results", str(results), "--out", str(reports)]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("segbench: error: ") == 1, err
    assert str(table_json) in err and "'../../../x'" in err
    assert [p for p in tmp_path.rglob("x.html")] == []


def test_security_run_name_from_a_table_cannot_leave_results(tmp_path, capsys):
    results, reports = tmp_path / "results", tmp_path / "reports"
    build_results(results, ("table2b",), "mini")
    table_json = results / "mini" / "tables" / "table2b.json"
    table = json.loads(table_json.read_text())
    table["runs"] = {"../../../../etc": {}}
    table_json.write_text(json.dumps(table))
    code = main(
        ["report", "--scale", "mini", "--no-figures", "--results", str(results), "--out", str(reports)]
    )
    assert code == 2 and "'../../../../etc'" in capsys.readouterr().err


def test_security_figure_manifest_cannot_embed_a_file_outside_figures(tmp_path):
    from segbench.reporting.figures.base import read_manifest

    manifest = tmp_path / "figures" / "fig.json"
    manifest.parent.mkdir()
    manifest.write_text(
        json.dumps(
            {"name": "fig", "title": "t", "caption": "c", "status": "ok", "html": "../../../../etc/passwd"}
        )
    )
    with pytest.raises(InputError, match="figure file"):
        read_manifest(manifest)


def test_security_run_dir_refuses_escaping_run_ids(tmp_path):
    with pytest.raises(InputError, match="run"):
        run_dir("smoke", "../../elsewhere", tmp_path)
    with pytest.raises(InputError, match="scale"):
        run_dir("../x", "r-seed0", tmp_path)


# -- files written through the atomic path honour the umask (not mkstemp's 0600) ---------------------------
@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_security_atomic_writes_honour_the_umask(mask, mode, umask, tmp_path):
    import torch

    from segbench.engine.checkpoint import save_torch

    umask(mask)
    write_json_atomic(tmp_path / "config.json", {"a": 1})
    write_text_atomic(tmp_path / "table.md", "| a |\n")
    save_torch({"w": torch.zeros(2)}, tmp_path / "checkpoint_00000002.pt")
    for name in ("config.json", "table.md", "checkpoint_00000002.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_equal_weights_saved_twice_are_equal_bytes(tmp_path):
    """save_torch is reproducible: the sha256 that pins a mini backbone, or DVC's cache key of a final
    model, names the tensors, not the temporary file name torch.save would write into the archive."""
    import torch

    from segbench.engine.checkpoint import save_torch
    from segbench.io import sha256_file

    state = {"w": torch.arange(6.0).reshape(2, 3), "meta": {"run": "r"}}
    save_torch(state, tmp_path / "a.pt")
    save_torch(state, tmp_path / "b" / "model_final.pt")
    assert sha256_file(tmp_path / "a.pt") == sha256_file(tmp_path / "b" / "model_final.pt")
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], state["w"])


def test_security_cli_outputs_are_world_readable_under_umask_022(umask, tmp_path):
    umask(0o022)
    results, reports = tmp_path / "results", tmp_path / "reports"
    build_results(results, ("table2b",), "mini")
    assert (
        main(["report", "--scale", "mini", "--no-figures", "--results", str(results), "--out", str(reports)])
        == 0
    )
    pages = list((reports / "mini").glob("*.html"))
    assert pages and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in pages)


@pytest.mark.parametrize("rel", ["../x.tif", "a/../../x", "/etc/passwd", "a\x00b"])
def test_security_relative_child_refuses_escapes(rel, tmp_path):
    with pytest.raises(InputError, match="leaves"):
        relative_child(tmp_path, rel, what="layout path")


def test_security_relative_child_allows_subfolders(tmp_path):
    assert (
        relative_child(tmp_path, "01_GT/SEG/man_seg000.tif") == tmp_path / "01_GT" / "SEG" / "man_seg000.tif"
    )


def test_security_dataset_names_from_the_dataset_registry_stay_inside_the_data_root(
    tmp_path, monkeypatch, capsys
):
    from segbench.data import registry as data_registry

    registry_file = tmp_path / "datasets.yaml"
    registry_file.write_text("""
datasets:
  evil:
    source: real
    format: isbi2012
    directory: ../../outside
    downloads:
      - {url: null, file: ../../../x.tif, sha256: null, extract: false}
    layout: {volume: ../../v.tif, labels: l.tif}
""")
    monkeypatch.setattr(data_registry, "DATASETS_YAML", registry_file)
    code = main(["data", "prepare", "evil", "--data-root", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("segbench: error: ") == 1 and "'../../outside'" in err, err
    assert not (tmp_path / "outside").exists()


def test_security_manifest_entries_cannot_point_outside_the_dataset(tmp_path):
    from segbench.data import integrity

    with pytest.raises(InputError, match="MANIFEST entry"):
        integrity.check(tmp_path, {"files": {"../../etc/passwd": {"sha256": "0", "bytes": 1}}})
