"""The README is one page, the MkDocs site builds strictly, its links resolve, and the digest is current."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from segbench.cli import main
from segbench.errors import InputError
from segbench.io import read_json, write_json_atomic
from segbench.paths import REPO_ROOT
from segbench.tables.digest import DIGEST_FILES, stale_files, updated_text, write_digests

MKDOCS = Path(sys.executable).parent / "mkdocs"


def load_doc_links() -> ModuleType:
    spec = importlib.util.spec_from_file_location("doc_links", REPO_ROOT / "scripts" / "doc_links.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_readme_is_one_page() -> None:
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move the detail into a docs/ page"


def test_the_site_builds_strictly_with_every_page_in_the_nav(tmp_path: Path) -> None:
    out = mkdocs_build(REPO_ROOT, tmp_path / "site")
    assert out.returncode == 0, out.stderr[-3000:]
    built = {p.stem for p in (tmp_path / "site").glob("*.html")} - {"404"}
    assert built == {p.stem for p in (REPO_ROOT / "docs").glob("*.md")}


def test_the_docs_and_readme_have_no_dead_link_or_anchor() -> None:
    doc_links = load_doc_links()
    assert [line for page in doc_links.pages() for line in doc_links.dead_links(page)] == []


def test_the_link_check_finds_each_kind_of_dead_link(tmp_path: Path) -> None:
    doc_links = load_doc_links()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Two words\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/a.md#two-words) [gone](docs/b.md) [anchor](docs/a.md#three-words) [abs](/docs/a.md) "
        "[out](../x.md) [self](#nope) [url](https://example.org/x.md) `[code](docs/c.md)`\n",
        encoding="utf-8",
    )
    problems = doc_links.dead_links(readme, tmp_path)
    assert problems == [
        "README.md: link 'docs/b.md': docs/b.md does not exist",
        "README.md: link 'docs/a.md#three-words': no heading #three-words in docs/a.md",
        "README.md: link '/docs/a.md' is absolute; make it relative to the page",
        "README.md: link '../x.md' leaves the repository",
        "README.md: link '#nope': no heading #nope in README.md",
    ]


def test_an_anchor_must_be_the_same_on_github_and_on_the_site(tmp_path: Path) -> None:
    doc_links = load_doc_links()
    page = tmp_path / "a.md"
    page.write_text("# A - B\n\n## Real data: U-Net (`real_cpu`)\n", encoding="utf-8")
    # Python-Markdown gives "a-b", GitHub "a---b": a link to either breaks in one of the two places
    assert doc_links.anchors(page) == {"real-data-u-net-real_cpu"}


def mkdocs_project(root: Path, page: str) -> Path:
    """A tiny MkDocs project with the repository's hook: README.md, docs/index.md holding ``page``."""
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "doc_links.py", root / "scripts")
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text(page, encoding="utf-8")
    (root / "README.md").write_text("# Readme\n\n## Where to read\n", encoding="utf-8")
    (root / "mkdocs.yml").write_text(
        "site_name: t\nuse_directory_urls: false\nhooks:\n  - scripts/doc_links.py\n", encoding="utf-8"
    )
    return root


def test_the_hook_fails_the_build_on_a_dead_anchor_and_keeps_repository_links(tmp_path: Path) -> None:
    good = mkdocs_project(tmp_path / "good", "# Home\n\n[read](../README.md#where-to-read)\n")
    out = mkdocs_build(good, good / "site")
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'href="../README.md#where-to-read"' in (good / "site" / "index.html").read_text(encoding="utf-8")

    bad = mkdocs_project(tmp_path / "bad", "# Home\n\n[read](../README.md#where-to-go)\n")
    out = mkdocs_build(bad, bad / "site")
    assert out.returncode != 0
    assert (
        "docs/index.md: link '../README.md#where-to-go': no heading #where-to-go in README.md" in out.stderr
    )


def test_the_digest_blocks_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "--summary", "--check"]) == 0, capsys.readouterr().err


def digest_copy(tmp_path: Path) -> tuple[Path, Path]:
    """README.md and docs/results.md, and the committed table JSONs they are built from, in tmp_path."""
    repo, results = tmp_path / "repo", tmp_path / "results"
    for name in DIGEST_FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, repo / name)
    for tables in (REPO_ROOT / "results").glob("*/tables"):
        shutil.copytree(tables, results / tables.parent.name / "tables")
    return repo, results


def test_every_number_of_the_digest_comes_from_the_table_json(tmp_path: Path) -> None:
    repo, results = digest_copy(tmp_path)
    assert stale_files(repo, results) == []
    table = results / "mini" / "tables" / "table2c.json"
    record = read_json(table)
    roipool = next(r for r in record["rows"] if r["label"] == "RoIPool (max)")
    old = f"{roipool['values']['AP75']['mean']:.1f}"  # AP in points, one decimal (segbench.formatting)
    roipool["values"]["AP75"]["mean"] = 98.76
    write_json_atomic(table, record)

    assert stale_files(repo, results) == [repo / "README.md", repo / "docs" / "results.md"]
    assert write_digests(repo, results) == [repo / "README.md", repo / "docs" / "results.md"]
    readme = (repo / "README.md").read_text(encoding="utf-8")
    assert "| [table2c](results/mini/tables/table2c.md) AP75 | RoIPool (max) | 98.8 ± " in readme
    assert f"| RoIPool (max) | {old} ± " not in readme
    docs = (repo / "docs" / "results.md").read_text(encoding="utf-8")
    assert "| [table2c](../results/mini/tables/table2c.md) AP75 | RoIPool (max) | 98.8 ± " in docs
    assert stale_files(repo, results) == []
    # only the blocks change: the prose around them is the committed one
    before = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("<!-- digest:begin")[0]
    assert readme.startswith(before)


def test_check_names_the_stale_file_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, results = digest_copy(tmp_path)
    readme = repo / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace("| 30.3 |", "| 31.3 |", 1), encoding="utf-8")
    monkeypatch.setattr("segbench.paths.REPO_ROOT", repo)
    assert main(["table", "--summary", "--check", "--results", str(results)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("segbench: error: README.md: results digest is stale") and "make digest" in err
    assert "docs/results.md" not in err
    assert main(["table", "--summary", "--write", "--results", str(results)]) == 0
    assert "digest: wrote README.md" in capsys.readouterr().err
    assert main(["table", "--summary", "--check", "--results", str(results)]) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- digest:begin scale=mini -->\n", "README.md:1: digest block has no <!-- digest:end -->"),
        ("<!-- digest:end -->\n", "README.md:1: <!-- digest:end --> without a digest:begin marker"),
        (
            "<!-- digest:begin scale=huge -->\n<!-- digest:end -->\n",
            "README.md:1: digest marker scale='huge'",
        ),
        ("<!-- digest:begin scale=mini tables=tableX -->\n<!-- digest:end -->\n", "unknown table(s) tableX"),
        ("<!-- digest:begin scale=mini parts=claims,values -->\n<!-- digest:end -->\n", "in that order"),
        ("<!-- digest:begin scale=mini colour=red -->\n<!-- digest:end -->\n", "option 'colour=red'"),
        ("no block here\n", "README.md: no digest block"),
    ],
)
def test_a_malformed_digest_marker_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="^" + str(tmp_path).replace("\\", "\\\\") + "/") as error:
        updated_text(readme, tmp_path, REPO_ROOT / "results")
    assert message in str(error.value) and "\n" not in str(error.value)
