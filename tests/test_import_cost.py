"""What a Snakemake parse and the light subcommands import: not torch, not scipy.

Every Snakemake call parses the Snakefile (CI's test suite makes hundreds), and a smoke ``reproduce_all``
runs about 60 table, figure and page jobs; importing torch costs each of them 1-3 s on a 2-core machine.
The modules are found from the Snakefile's own ``from segbench... import`` lines, so a new import there is
checked too."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from segbench.paths import REPO_ROOT

HEAVY = ("torch", "scipy")
SNAKEFILES = [REPO_ROOT / "workflow" / "Snakefile", *sorted((REPO_ROOT / "workflow" / "rules").glob("*.smk"))]


def imported_heavy(code: str) -> list[str]:
    """The heavy packages a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    return result.stdout.split()


def snakefile_imports() -> list[str]:
    lines = []
    for path in SNAKEFILES:
        lines += re.findall(r"^\s*(from segbench[\w.]* import [^\n]+)$", path.read_text(), flags=re.M)
    return lines


def test_the_snakefile_imports_are_found():
    assert any("segbench.registry" in line for line in snakefile_imports())


def test_parsing_the_snakefile_imports_neither_torch_nor_scipy():
    assert imported_heavy("\n".join(snakefile_imports())) == []


@pytest.mark.parametrize("command", ["list", "table", "report", "status"])
def test_a_light_subcommand_does_not_import_torch(command):
    code = (
        "from segbench.cli import build_parser, _named_subcommand\n"
        f"build_parser(only=_named_subcommand([{command!r}]))"
    )
    assert "torch" not in imported_heavy(code)


def test_the_full_parser_still_lists_every_subcommand():
    from segbench.cli import SUBCOMMANDS, build_parser

    text = build_parser().format_help()
    assert all(name in text for name in SUBCOMMANDS)
