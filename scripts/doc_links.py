"""Dead relative links and anchors in README.md and docs/*.md; also the MkDocs hook of ``mkdocs.yml``.

Each page is rendered with Python-Markdown (the renderer MkDocs uses, with its ``toc`` ids), and every
``href``/``src`` that is not a URL must name a file of the checkout that git does not ignore (what a
clone has), inside the repository; an anchor into a Markdown file must be one of that file's heading ids,
the same under Python-Markdown's and GitHub's slug rules (so it works on the site and on GitHub).

    python scripts/doc_links.py    # one line per dead link, exit 1; exit 0 when none

As a hook (``hooks:`` in ``mkdocs.yml``) it fails ``mkdocs build`` on a dead link, and lets a page link
to repository files outside ``docs/`` (``../results/mini/tables/table2c.md``): MkDocs would report
those as missing pages, so the link is rewritten to the same file relative to the built page, which
works while ``site/`` lies in the checkout.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

REPO = Path(__file__).resolve().parents[1]
EXTENSIONS = ["toc", "tables", "fenced_code"]  # what MkDocs always loads
LINK_ATTRIBUTES = {"a": "href", "img": "src"}


def pages(repo: Path = REPO) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [repo / "README.md", *sorted((repo / "docs").rglob("*.md"))]


@cache
def _shipped(repo: Path) -> frozenset[Path] | None:
    """Files a clone has (tracked, or new and not ignored), and their folders; None outside git."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return None
    files = {repo / name for name in out.stdout.split("\0") if name}
    return frozenset(files | {parent for f in files for parent in f.parents})


class _Links(HTMLParser):
    """Every ``href`` of an ``a`` and ``src`` of an ``img`` of a rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        url = dict(attrs).get(LINK_ATTRIBUTES.get(tag, ""))
        if url:
            self.urls.append(url)


def _render(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The page's link targets, and its table of contents (``toc_tokens``)."""
    md = markdown.Markdown(extensions=EXTENSIONS)
    parser = _Links()
    parser.feed(md.convert(path.read_text(encoding="utf-8")))
    return parser.urls, md.toc_tokens  # type: ignore[attr-defined]


def github_slug(name: str) -> str:
    """GitHub's heading id: lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", html.unescape(name).lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Heading ids of a Markdown file that Python-Markdown (MkDocs) and GitHub both give."""
    found: set[str] = set()
    stack = list(_render(path)[1])
    while stack:
        token = stack.pop()
        if token["id"] == github_slug(token["name"]):
            found.add(token["id"])
        stack += token["children"]
    return frozenset(found)


def dead_links(path: Path, repo: Path = REPO) -> list[str]:
    """One line per dead relative link or anchor of ``path``."""
    problems = []
    shipped = _shipped(repo)
    where = path.relative_to(repo)
    for url in _render(path)[0]:
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            continue  # a URL: not checked offline
        if url.startswith("/"):
            problems.append(f"{where}: link {url!r} is absolute; make it relative to the page")
            continue
        target = Path(os.path.normpath(path.parent / unquote(parts.path))) if parts.path else path
        if repo not in (target, *target.parents):
            problems.append(f"{where}: link {url!r} leaves the repository")
        elif not target.exists() or (shipped is not None and target not in shipped):
            reason = "does not exist" if not target.exists() else "is ignored by git (a clone lacks it)"
            problems.append(f"{where}: link {url!r}: {target.relative_to(repo)} {reason}")
        elif parts.fragment and target.suffix == ".md" and parts.fragment not in anchors(target):
            problems.append(
                f"{where}: link {url!r}: no heading #{parts.fragment} in {target.relative_to(repo)}"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    problems = [line for page in pages() for line in dead_links(page)]
    for line in problems:
        print(line, file=sys.stderr)
    print(f"doc_links: {len(pages())} pages, {len(problems)} dead link(s)", file=sys.stderr)
    return 1 if problems else 0


# --- MkDocs hook ---------------------------------------------------------------------------------------

REPO_SCHEME = "segbench-repo:"  # marks a repository link while MkDocs validates the page's links
_current: dict[str, Path] = {}


class _Mark(Treeprocessor):
    """Before MkDocs' link validation: a link outside docs/ becomes ``segbench-repo:<path from the page>``."""

    def run(self, root: ET.Element) -> None:
        source, built, docs = _current["source"], _current["built"], _current["docs"]
        for element in root.iter():
            attribute = LINK_ATTRIBUTES.get(element.tag)
            url = element.get(attribute or "")
            parts = urlsplit(url or "")
            if not url or parts.scheme or parts.netloc or url.startswith("/") or not parts.path:
                continue
            target = Path(os.path.normpath(source.parent / unquote(parts.path)))
            if docs not in target.parents:
                relative = Path(os.path.relpath(target, built.parent)).as_posix()
                element.set(
                    attribute, REPO_SCHEME + relative + (f"#{parts.fragment}" if parts.fragment else "")
                )


class _Unmark(Treeprocessor):
    """After MkDocs' link validation: drop the mark again."""

    def run(self, root: ET.Element) -> None:
        for element in root.iter():
            attribute = LINK_ATTRIBUTES.get(element.tag, "")
            url = element.get(attribute)
            if url and url.startswith(REPO_SCHEME):
                element.set(attribute, url.removeprefix(REPO_SCHEME))


class RepoLinks(Extension):
    """Around MkDocs' own link processor (priority 0): mark before it, unmark after it."""

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (Python-Markdown's name)
        md.treeprocessors.register(_Mark(md), "segbench_repo_mark", 1)
        md.treeprocessors.register(_Unmark(md), "segbench_repo_unmark", -1)


def on_config(config: Any) -> Any:
    config.markdown_extensions.append(RepoLinks())
    return config


def on_pre_build(config: Any) -> None:
    from mkdocs.exceptions import PluginError

    problems = [line for page in pages() for line in dead_links(page)]
    if problems:
        raise PluginError("dead links (scripts/doc_links.py):\n" + "\n".join(problems))


def on_page_markdown(markdown_text: str, page: Any, config: Any, files: Any) -> str:
    _current["source"] = Path(page.file.abs_src_path)
    _current["built"] = Path(config.site_dir) / page.file.dest_uri
    _current["docs"] = Path(config.docs_dir)
    return markdown_text


if __name__ == "__main__":
    sys.exit(main())
