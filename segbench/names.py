"""The name rules for what a page turns into a link or a file name: only names that pass them get there.

The registry's rule is ``[a-z0-9_]+`` (``experiments.schema.json``: runs, tables, rows, figures); a plugin's
name is ``[A-Za-z0-9_]+`` (:mod:`segbench.plugins`). Composite names are built from those: a run instance
``<run>[+<method>]-seed<k>``, a comparison ``<table>--<method>``, a figure file ``<figure>.<ext>``. A name
read from a record (a table JSON, a comparison, a figure manifest) that breaks its rule is refused with one
line naming the file and the field, so ``javascript:``, ``data:`` or ``//host`` never reach an ``href``.
"""

from __future__ import annotations

import html
import os
import re

from segbench.errors import InputError

REGISTRY_NAME = r"[a-z0-9_]+"
METHOD_NAME = r"[A-Za-z0-9_]+"
RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "name": (re.compile(REGISTRY_NAME), "a registry name: a-z, 0-9 and _"),
    "run": (re.compile(rf"{REGISTRY_NAME}(\+{METHOD_NAME})?"), "<run>[+<method>] (a-z, 0-9, _)"),
    "run_id": (re.compile(rf"{REGISTRY_NAME}(\+{METHOD_NAME})?-seed[0-9]+"), "<run>[+<method>]-seed<k>"),
    "method": (re.compile(METHOD_NAME), "a plugin name: letters, digits and _"),
    "comparison": (re.compile(rf"{REGISTRY_NAME}--{METHOD_NAME}"), "<table>--<method>"),
    "file": (re.compile(rf"{REGISTRY_NAME}\.[a-z0-9]+"), "<name>.<ext> (a-z, 0-9, _)"),
}


def check_name(
    value: object, rule: str = "name", *, what: str, source: str | os.PathLike[str] | None = None
) -> str:
    """``value`` if it passes ``rule`` (a key of :data:`RULES`), else one line naming ``source`` and ``what``."""
    pattern, words = RULES[rule]
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    where = f"{source}: " if source else ""
    raise InputError(
        f"{where}{what} {value!r} is not a valid name (expected {words}); "
        "fix or regenerate the file (segbench table / segbench compare)"
    )


# -- every href/src of a written page is relative ---------------------------------------------------------
LINK_ATTR = re.compile(
    r"""\b(?:href|src|xlink:href|action|formaction|poster|srcset|background)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""",
    re.IGNORECASE,
)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
CONTROL = re.compile(r"[\x00-\x20\x7f]")


def unsafe_link(value: str) -> bool:
    """Whether a link leaves the report: a scheme (``javascript:``, ``data:``, ``http:``), a
    protocol-relative ``//host`` or an absolute ``/path`` (after entities and blanks are undone, as a
    browser does)."""
    text = CONTROL.sub("", html.unescape(value.strip("\"'")))
    return bool(SCHEME.match(text)) or text.startswith(("/", "\\"))


def check_links(page: str, path: str | os.PathLike[str]) -> str:
    """``page`` if every ``href``/``src`` in it is relative (or a ``#fragment``), else one line naming it."""
    for match in LINK_ATTR.finditer(page):
        if unsafe_link(match.group(1)):
            raise InputError(
                f"{path}: would link to {match.group(1)[:80]!r}, not a relative link; a name in the "
                "results (table, run, comparison or figure) is malformed: regenerate it"
            )
    return page
