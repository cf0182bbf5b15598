"""The results digest inside README.md and docs/results.md, regenerated from the table JSONs.

A digest block is delimited by two HTML comments, which Markdown renders as nothing::

    <!-- digest:begin scale=mini tables=table2a,table2c parts=values,count -->
    ...generated Markdown, never edited by hand...
    <!-- digest:end -->

The begin marker says what the block holds: ``scale`` (required), ``tables`` (default: every assembled
table of the scale, in registry order) and ``parts`` (any of ``values``, ``count``, ``claims``, ``curve``,
in that order; default the first three, i.e. ``segbench table --summary``; ``curve``: the error-vs-compute
fit of the tables that have one, :mod:`segbench.tables.compute_curve`). ``segbench table --summary --write``
rewrites every block from ``results/<scale>/tables/*.json``; ``--check`` says which file is stale.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.io import write_text_atomic
from segbench.paths import tables_dir
from segbench.tables.summary import (
    claims_count_markdown,
    claims_markdown,
    curve_markdown,
    load_tables,
    values_markdown,
)

#: The files holding digest blocks, relative to the repository root.
DIGEST_FILES = ("README.md", "docs/results.md")
BEGIN = re.compile(r"^<!-- digest:begin (?P<options>[^>]*?) ?-->$")
END = "<!-- digest:end -->"
PARTS: dict[str, Callable[[str, list[dict[str, Any]], str], str]] = {
    "values": values_markdown,
    "count": lambda scale, tables, _root: claims_count_markdown(scale, tables),
    "claims": lambda scale, tables, _root: claims_markdown(scale, tables),
    "curve": lambda _scale, tables, _root: curve_markdown(tables),
}
DEFAULT_PARTS = ("values", "count", "claims")
FIX = "write it as <!-- digest:begin scale=S [tables=A,B] [parts=values,count,claims,curve] -->"


@dataclass(frozen=True)
class Block:
    """One digest block: its options and the line numbers (0-based) of its two markers."""

    scale: str
    tables: tuple[str, ...] | None
    parts: tuple[str, ...]
    begin: int
    end: int


def _options(
    text: str, where: str, registry: dict[str, Any]
) -> tuple[str, tuple[str, ...] | None, tuple[str, ...]]:
    """``scale``, ``tables`` and ``parts`` of a begin marker, each checked against the registry."""
    from segbench.registry import table_names

    options: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if not sep or key not in ("scale", "tables", "parts") or key in options:
            raise InputError(
                f"{where}: digest marker option {word!r} is not scale=, tables= or parts=; {FIX}"
            )
        options[key] = value
    scale = options.get("scale")
    if scale not in registry["scales"]:
        raise InputError(f"{where}: digest marker scale={scale!r} is not a registry scale; {FIX}")
    tables = tuple(options["tables"].split(",")) if "tables" in options else None
    unknown = sorted(set(tables or ()) - set(table_names(registry)))
    if unknown:
        raise InputError(
            f"{where}: digest marker names unknown table(s) {', '.join(unknown)} (segbench list)"
        )
    parts = tuple(options["parts"].split(",")) if "parts" in options else DEFAULT_PARTS
    if set(parts) - set(PARTS) or list(parts) != sorted(parts, key=list(PARTS).index):
        raise InputError(
            f"{where}: digest marker parts={options['parts']!r}: use values, count, claims, curve in that order"
        )
    return scale, tables, parts


def find_blocks(path: Path, lines: list[str], registry: dict[str, Any]) -> list[Block]:
    """Every digest block of ``path``; an unclosed, nested or malformed marker is one line naming it."""
    blocks: list[Block] = []
    opened: tuple[int, tuple[str, tuple[str, ...] | None, tuple[str, ...]]] | None = None
    for number, line in enumerate(lines):
        where = f"{path}:{number + 1}"
        match = BEGIN.match(line.strip())
        if match:
            if opened is not None:
                raise InputError(f"{where}: digest block opened at line {opened[0] + 1} has no {END}")
            opened = (number, _options(match["options"], where, registry))
        elif line.strip() == END:
            if opened is None:
                raise InputError(f"{where}: {END} without a digest:begin marker before it")
            blocks.append(Block(*opened[1], begin=opened[0], end=number))
            opened = None
    if opened is not None:
        raise InputError(f"{path}:{opened[0] + 1}: digest block has no {END}; add it after the block")
    return blocks


def render(block: Block, results: Path, link_root: str) -> str:
    """The Markdown between a block's markers, from ``results/<scale>/tables/*.json``."""
    tables = load_tables(block.scale, results, list(block.tables) if block.tables else None)
    if not tables:
        raise InputError(
            f"{tables_dir(results, block.scale)}: no assembled table for the digest; run `segbench table`"
        )
    text = "\n".join(PARTS[part](block.scale, tables, link_root) for part in block.parts)
    return text if text.endswith("\n") else text + "\n"  # the end marker on a line of its own


def updated_text(path: Path, repo: Path, results: Path, scale: str | None = None) -> str:
    """``path``'s text with every digest block (of ``scale``, if given) regenerated."""
    from segbench.registry import load_registry

    registry = load_registry()
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    link_root = Path(os.path.relpath(repo, path.parent)).as_posix() + "/"
    link_root = "" if link_root == "./" else link_root
    out: list[str] = []
    done = 0
    blocks = find_blocks(path, lines, registry)
    if not blocks:
        raise InputError(f"{path}: no digest block; add one ({FIX})")
    for block in blocks:
        out += lines[done : block.begin + 1]
        current = "".join(lines[block.begin + 1 : block.end])
        out.append(render(block, results, link_root) if scale in (None, block.scale) else current)
        done = block.end
    return "".join(out + lines[done:])


def digest_files(repo: Path) -> list[Path]:
    """The files that hold digest blocks; a missing one is an error (the digest would be lost)."""
    paths = [repo / name for name in DIGEST_FILES]
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: missing; the results digest is written into it (restore it from git)")
    return paths


def stale_files(repo: Path, results: Path, scale: str | None = None) -> list[Path]:
    """The digest files whose blocks differ from what the table JSONs give now."""
    return [
        p
        for p in digest_files(repo)
        if updated_text(p, repo, results, scale) != p.read_text(encoding="utf-8")
    ]


def write_digests(repo: Path, results: Path, scale: str | None = None) -> list[Path]:
    """Rewrite every stale digest file (atomically); return the ones written."""
    written = []
    for path in digest_files(repo):
        text = updated_text(path, repo, results, scale)
        if text != path.read_text(encoding="utf-8"):
            write_text_atomic(path, text)
            written.append(path)
    return written
