"""The default scale is named once: ``default_scale`` of the registry (#37 item 9).

The Makefile reads it (``SCALE``), config/config.yaml sets no scale (the Snakefile falls back to it) and
dvc.yaml's ``vars`` read it, so none of them may name a scale of its own; ``.ci/run`` edits no tracked file
to change it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from segbench.paths import REPO_ROOT
from segbench.registry import load_registry

REGISTRY_FILE = Path("segbench/registry/experiments.yaml")


def code_lines(path: Path) -> str:
    """The file without its comments (``#`` to the end of the line)."""
    return "\n".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())


def test_the_default_scale_is_named_only_in_the_registry():
    default = load_registry()["default_scale"]
    named = re.compile(rf"\b{re.escape(default)}\b")
    for name in ("Makefile", "config/config.yaml", "dvc.yaml"):
        assert not named.search(code_lines(REPO_ROOT / name)), f"{name} names the default scale {default!r}"
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    assert config.get("scale") is None, (
        "config/config.yaml sets a scale: the registry's default_scale is the one"
    )
    dvc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    assert f"{REGISTRY_FILE}:default_scale,tables" in dvc["vars"]
    assert "${scale}" not in (REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8")
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "sed -i" not in ci and "default_scale=smoke" in ci


def test_no_command_option_defaults_to_a_scale_of_its_own():
    """A ``--scale`` of the CLI that means "the default scale" reads the registry's default_scale when it runs
    instead of naming it (``segbench plan`` defaults to paper on purpose: it costs GPU runs)."""
    default = load_registry()["default_scale"]
    literal = re.compile(rf"""["']--scale["'],\s*default=["']{re.escape(default)}["']""")
    found = [
        path.name
        for path in sorted((REPO_ROOT / "segbench" / "cli").glob("*.py"))
        if literal.search(path.read_text(encoding="utf-8"))
    ]
    assert not found, f"--scale with a literal default in {found}"


@pytest.mark.skipif(shutil.which("make") is None, reason="make absent")
def test_the_makefile_scale_follows_the_registry(tmp_path):
    """A copy of the Makefile beside a registry whose default_scale is changed takes the new one; an
    explicit SCALE still wins."""
    (tmp_path / REGISTRY_FILE).parent.mkdir(parents=True)
    text = (REPO_ROOT / REGISTRY_FILE).read_text(encoding="utf-8")
    default = load_registry()["default_scale"]
    assert text.count(f"\ndefault_scale: {default}\n") == 1
    other = "smoke" if default != "smoke" else "paper"
    (tmp_path / REGISTRY_FILE).write_text(
        text.replace(f"\ndefault_scale: {default}\n", f"\ndefault_scale: {other}\n")
    )
    shutil.copy2(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    for name in ("pyproject.toml", "constraints.txt"):  # the install step's prerequisites (make -n below)
        (tmp_path / name).touch()

    def scale(*args: str) -> str:
        show = [
            "make",
            "-s",
            "--no-print-directory",
            "--eval",
            "show-scale: ; @echo $(SCALE)",
            *args,
            "show-scale",
        ]
        out = subprocess.run(show, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert scale() == other
    assert scale("SCALE=rehearsal") == "rehearsal"
    # what `make reproduce` runs: the scale reaches both segbench status and Snakemake's --config
    dry = subprocess.run(
        ["make", "-n", "reproduce", f"VENV={tmp_path / 'venv'}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert f"--scale {other}" in dry.stdout and f"--config scale={other}" in dry.stdout, (
        dry.stdout + dry.stderr
    )
