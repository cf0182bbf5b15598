"""Security, round three (issue #36): a name read from a record never leaves its root nor becomes a link
that is not relative.

Items 1 and 2: every path built from a record's content (a run's recorded ``config_hash``, the run ids, scales
and table names of a table JSON or a comparison) goes through :func:`segbench.paths.child_path`; every name
a page turns into a link or a file name passes its rule (:mod:`segbench.names`), and every ``href``/``src``
of a written page is relative, else ``segbench report`` refuses in one line and writes no page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from test_faults import one_error_line
from test_reporting_compare import STEM, fake_comparison
from test_reporting_fixtures import SCALE, build_results

from segbench.cli import main
from segbench.engine.runner import set_aside_stale
from segbench.errors import InputError
from segbench.names import check_links, check_name, unsafe_link

FORGED_HASH = "abc/../../../../../ESCAPED_STALE"
PAYLOADS = {
    "javascript": "javascript:alert(document.domain);x",
    "data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg",
    "host": "//evil.example/x",
}
LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


# -- item 1: a forged config_hash cannot move a run's files out of the results root ------------------------
def _run_with_forged_hash(run_dir: Path) -> dict[str, bytes]:
    (run_dir / "stale-abc").mkdir(parents=True)
    files = {
        "config.json": json.dumps({"config_hash": FORGED_HASH, "config": {}}).encode(),
        "metrics.json": b'{"metrics": {}}',
        "checkpoint_00000010.pt": b"weights",
    }
    for name, blob in files.items():
        (run_dir / name).write_bytes(blob)
    return files


def test_security_forged_config_hash_is_refused_by_set_aside_stale(tmp_path):
    run_dir = tmp_path / "results" / "smoke" / "runs" / "unet_isbi-seed0"
    files = _run_with_forged_hash(run_dir)
    with pytest.raises(InputError, match="config_hash"):
        set_aside_stale(run_dir, "0123456789abcdef", force=True)
    assert {name: (run_dir / name).read_bytes() for name in files} == files
    assert list(tmp_path.rglob("ESCAPED_STALE")) == []


def test_security_forged_config_hash_through_train_force(tmp_path, monkeypatch, capsys):
    from segbench.engine import runner

    def no_dataset(*args, **kwargs):  # the refusal comes before any data is needed
        return None

    monkeypatch.setattr(runner, "dataset_of", no_dataset)
    results = tmp_path / "a" / "b" / "c" / "results"
    run_dir = results / "smoke" / "runs" / "unet_isbi-seed0"
    files = _run_with_forged_hash(run_dir)
    args = ["train", "--run", "unet_isbi", "--scale", "smoke", "--force", "--device", "cpu"]
    code = main([*args, "--results", str(results), "--data-root", str(tmp_path / "data")])
    line = one_error_line(capsys)
    assert code == 2 and "config_hash" in line and str(run_dir / "config.json") in line, line
    assert {name: (run_dir / name).read_bytes() for name in files} == files
    assert list(tmp_path.rglob("ESCAPED_STALE")) == []


@pytest.fixture
def tables(tmp_path) -> Path:
    results = tmp_path / "results"
    build_results(results, ("unet_table1",))
    return results


def _edit(path: Path, edit: Callable[[dict], None]) -> None:
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


def _forge_first_run(record: dict, rid: str) -> None:
    first = sorted(record["runs"])[0]
    record["runs"][rid] = record["runs"].pop(first)


@pytest.mark.parametrize("rid", ["../../../../outside-seed0", "..", "/etc/passwd"])
def test_security_forged_run_id_in_a_table_is_refused_by_status(tables, rid, capsys):
    table_json = tables / SCALE / "tables" / "unet_table1.json"
    _edit(table_json, lambda t: _forge_first_run(t, rid))
    code = main(["status", "unet_table1", "--scale", SCALE, "--results", str(tables)])
    line = one_error_line(capsys)
    assert code == 2 and str(table_json) in line and repr(rid) in line, line


@pytest.mark.parametrize("field", ["runs", "seeds", "row_runs"], ids=["run_id", "seed", "method_run"])
def test_security_forged_run_of_a_comparison_never_leaves_results(tables, field, capsys):
    fake_comparison(tables)
    record = tables / SCALE / "compare" / f"{STEM}.json"
    forged = {
        "runs": lambda r: _forge_first_run(r, "../../../../../x-seed0"),
        "seeds": lambda r: r.update(seeds=["0/../../../../../../x"]),
        "row_runs": lambda r: r["rows"][-1].update(runs=["unet_isbi+../../../../x"]),
    }[field]
    _edit(record, forged)
    reports = tables.parent / "reports"
    code = main(["report", "--scale", SCALE, "--no-figures", "--results", str(tables), "--out", str(reports)])
    line = one_error_line(capsys)
    assert code == 2 and str(record) in line, line
    assert list(reports.rglob("*.html")) == []


# -- item 2: no name from a record becomes a link that is not relative -------------------------------------
def _table(results: Path) -> Path:
    return results / SCALE / "tables" / "unet_table1.json"


def _comparison(results: Path) -> Path:
    return results / SCALE / "compare" / f"{STEM}.json"


def _manifest(results: Path) -> Path:
    path = results.parent / "reports" / SCALE / "figures" / "training_curves.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "training_curves.png").write_bytes(b"\x89PNG fake")
    manifest = {
        "name": "training_curves",
        "title": "t",
        "caption": "c",
        "status": "ok",
        "files": ["training_curves.png"],
        "html": None,
        "tables": ["unet_table1"],
    }
    path.write_text(json.dumps(manifest))
    return path


def _rename_comparison(results: Path, value: str) -> Path:
    path = _comparison(results)
    target = path.with_name(f"{value}--dice_bce.json")
    path.rename(target)
    return target


# every field a page renders as a link or a file name: (file it lives in, edit)
NAME_FIELDS: dict[str, tuple[Callable[[Path], Path], Callable[[dict, str], None]]] = {
    "table.table": (_table, lambda t, v: t.update(table=v)),
    "table.scale": (_table, lambda t, v: t.update(scale=v)),
    "table.runs": (_table, lambda t, v: _forge_first_run(t, v)),
    "table.rows.runs": (_table, lambda t, v: t["rows"][0].update(runs=[v])),
    "compare.compared_table": (_comparison, lambda r, v: r.update(compared_table=v)),
    "compare.scale": (_comparison, lambda r, v: r.update(scale=v)),
    "compare.method.name": (_comparison, lambda r, v: r["method"].update(name=v)),
    "compare.runs": (_comparison, lambda r, v: _forge_first_run(r, v)),
    "compare.rows.runs": (_comparison, lambda r, v: r["rows"][-1].update(runs=[v])),
    "compare.seeds": (_comparison, lambda r, v: r.update(seeds=[v])),
    "figure.name": (_manifest, lambda m, v: m.update(name=v)),
    "figure.files": (_manifest, lambda m, v: m.update(files=[v])),
    "figure.html": (_manifest, lambda m, v: m.update(html=v)),
    "figure.tables": (_manifest, lambda m, v: m.update(tables=[v])),
}


def _links(reports: Path) -> list[str]:
    return [link for page in reports.rglob("*.html") for link in LINK.findall(page.read_text())]


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
@pytest.mark.parametrize("field", list(NAME_FIELDS))
def test_security_report_refuses_a_script_or_foreign_link_in_every_name_field(tables, field, payload, capsys):
    fake_comparison(tables)
    where, edit = NAME_FIELDS[field]
    source = where(tables)
    _edit(source, lambda record: edit(record, payload))
    reports = tables.parent / "reports"
    code = main(["report", "--scale", SCALE, "--no-figures", "--results", str(tables), "--out", str(reports)])
    line = one_error_line(capsys)
    assert code == 2 and str(source) in line, line
    assert list(reports.rglob("*.html")) == []  # nothing written, not even the pages before the bad one


@pytest.mark.parametrize("stem", ["javascript:alert(document.domain);x", "data:text,x", "Table2B"])
def test_security_report_refuses_a_comparison_file_name_that_is_not_a_name(tables, stem, capsys):
    fake_comparison(tables)
    source = _rename_comparison(tables, stem)
    reports = tables.parent / "reports"
    code = main(["report", "--scale", SCALE, "--no-figures", "--results", str(tables), "--out", str(reports)])
    line = one_error_line(capsys)
    assert code == 2 and str(source) in line, line
    assert list(reports.rglob("*.html")) == []


def test_security_the_issue_script_link_in_a_table_name(tables, capsys):
    """The issue's case: ``"table": "javascript:alert(document.domain);x"`` gave exit 0 and that href."""
    _edit(_table(tables), lambda t: t.update(table="javascript:alert(document.domain);x"))
    reports = tables.parent / "reports"
    code = main(["report", "--scale", SCALE, "--no-figures", "--results", str(tables), "--out", str(reports)])
    assert code == 2 and "'javascript:alert(document.domain);x'" in one_error_line(capsys)
    assert not (reports / SCALE / "index.html").exists()
    assert not any(unsafe_link(link) for link in _links(reports))


def test_security_every_link_of_a_clean_report_is_relative(tables, capsys):
    fake_comparison(tables)
    _manifest(tables)
    reports = tables.parent / "reports"
    code = main(["report", "--scale", SCALE, "--no-figures", "--results", str(tables), "--out", str(reports)])
    assert code == 0, capsys.readouterr().err
    links = _links(reports)
    assert len(links) > 50
    assert [link for link in links if unsafe_link(link)] == []


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " java&#115;cript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,x",
        "//evil.example/x",
        "/etc/passwd",
        "https://example.org/",
    ],
)
def test_security_check_links_refuses_a_link_that_is_not_relative(link, tmp_path):
    page = f'<p><a href="{link}">x</a></p>'
    with pytest.raises(InputError, match="not a relative link"):
        check_links(page, tmp_path / "index.html")


@pytest.mark.parametrize(
    "link", ["table2b.html", "../../results/mini/runs/r-seed0/config.json", "#directions"]
)
def test_security_check_links_keeps_relative_links(link, tmp_path):
    page = f"<a href='{link}'>x</a><img src=\"figures/{link}\">"
    assert check_links(page, tmp_path / "index.html") == page


@pytest.mark.parametrize(
    ("rule", "good", "bad"),
    [
        ("name", "table2b", "Table2b"),
        ("run_id", "unet_isbi+dice_bce-seed1", "unet_isbi-seed-1"),
        ("comparison", "unet_table1--DiceBCE", "unet_table1-DiceBCE"),
        ("file", "bars_table1.png", "bars_table1.png/x"),
    ],
)
def test_security_name_rules(rule, good, bad):
    assert check_name(good, rule, what="x") == good
    with pytest.raises(InputError, match="not a valid name"):
        check_name(bad, rule, what="x")
