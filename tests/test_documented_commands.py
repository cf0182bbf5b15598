"""Every shell command the README and docs/ show still runs, as a dry run where it can.

Fenced ``bash`` blocks and inline ``make ...``/``snakemake ...``/``dvc ...`` spans of README.md and
docs/*.md are extracted and each is checked in its cheapest real form: ``make -n`` (and the Snakemake
command lines it would run), ``snakemake -n``, ``dvc repro --dry`` (DVC's parser for its other commands),
the segbench argument parser, or the
command itself when it is cheap. Commands that cannot run here are listed in SKIPPED with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import dvc_in_checkout

from segbench.cli import build_parser
from segbench.paths import REPO_ROOT

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
SHELL_FENCES = {"bash", "sh", "shell", "console"}
INLINE_COMMANDS = ("make ", "snakemake ", "dvc ")
#: Commands that cannot run on a CPU-only CI machine, by their first words, with the reason.
SKIPPED = {
    "conda env create": "needs conda, which CI does not have (environment.yml is checked by its own test)",
    "torchrun": "multi-process DDP: tests/test_ddp.py runs the same entry point with 2 CPU processes",
    "pip install": "installs packages; CI's install step runs it",
    "source": "activates a shell environment; nothing to check",
    "pip download": "downloads packages; tests/test_bare_image.py checks constraints.txt, which it reads",
    "python -m venv": "creates an environment; `make install` does the same",
}


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for every shell command in a fenced shell block or an inline command span."""
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        fence: str | None = None
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{doc.relative_to(REPO_ROOT)}:{number}"
            if line.lstrip().startswith("```"):
                fence = None if fence is not None else line.strip().strip("`").strip()
                continue
            if fence in SHELL_FENCES:
                command = line.split(" #", 1)[0].strip()
                if command and not command.startswith("#"):
                    found.append((where, command))
            elif fence is None:
                for span in re.findall(r"`([^`]+)`", line):
                    words = span.split()
                    complete = any(
                        not w.startswith("-") for w in words[1:]
                    )  # `snakemake --report` names an option
                    if (
                        span.startswith(INLINE_COMMANDS)
                        and complete
                        and "..." not in span
                        and "<" not in span
                    ):
                        found.append((where, span.strip()))
    return found


COMMANDS = documented_commands()


def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def strip_env(words: list[str]) -> list[str]:
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words = words[1:]
    return words


def assert_config_last(words: list[str], where: str) -> None:
    """Snakemake reads every word after --config (or --resources) as key=value: no target may follow."""
    for option in ("--config", "--resources"):
        if option in words:
            tail = words[words.index(option) + 1 :]
            for word in tail:
                if word.startswith("-"):
                    break
                assert "=" in word, f"{where}: {word!r} after {option} is read as key=value: {words}"


def check(where: str, command: str) -> None:
    words = strip_env(shlex.split(command))
    head = " ".join(words[:3])
    for prefix, reason in SKIPPED.items():
        if head.startswith(prefix):
            pytest.skip(f"{command}: {reason}")
    tool, args = words[0], words[1:]
    if tool == "make":
        out = run(["make", "-n", *args])
        assert out.returncode == 0, f"{where}: make -n {args}: {out.stderr[-1500:]}"
        for line in out.stdout.splitlines():
            if "snakemake" in line and "--config" in line:
                assert_config_last(shlex.split(line), f"{where} (make {' '.join(args)})")
    elif tool == "snakemake":
        assert_config_last(words, where)
        if "--profile" in args and "slurm" in args[args.index("--profile") + 1]:
            if shutil.which("sbatch") is None:
                args = [a for i, a in enumerate(args) if a != "--profile" and args[i - 1] != "--profile"]
        out = run([str(BIN / "snakemake"), "-n", *args])
        missing = re.search(r"File (\S+) marked for report but does not exist", out.stdout + out.stderr)
        if "--report" in args and out.returncode != 0 and missing:
            # --report needs every page the DAG makes, also at -n; a table added to the registry has
            # none until the DAG runs (results/ and reports/ are never committed by hand)
            pytest.skip(f"{command}: {missing.group(1)} not produced yet (run the DAG first)")
        assert out.returncode == 0, f"{where}: snakemake -n {args}: {(out.stdout + out.stderr)[-1500:]}"
    elif tool == "dvc" and args[:1] == ["repro"]:
        with dvc_in_checkout():
            out = run([str(BIN / "dvc"), "repro", "--dry", *args[1:]])
        assert out.returncode == 0, f"{where}: dvc repro --dry: {(out.stdout + out.stderr)[-1500:]}"
    elif (
        tool == "dvc"
    ):  # docs/dvc.md: metrics, params, plots, remotes, push/pull (tests/test_dvc.py runs them)
        from dvc.cli import parse_args

        parse_args(args)  # the dry form: DVC's own parser accepts the command as documented
    elif tool == "segbench":
        build_parser().parse_args(args)  # the dry form: options and subcommand exist as documented
    elif tool == "python" and args[:2] == ["-m", "segbench"]:  # PYTHONPATH=. python -m segbench (docs/gpu.md)
        build_parser().parse_args(args[2:])
    elif tool == "python" and args[:1] == ["-c"]:
        out = run([sys.executable, *args])
        assert out.returncode == 0, f"{where}: {out.stderr[-1500:]}"
    else:
        pytest.fail(f"{where}: no dry form known for {command!r}: add one here or to SKIPPED")


def test_the_docs_show_commands():
    tools = {strip_env(shlex.split(c))[0] for _, c in COMMANDS}
    assert {"make", "snakemake", "dvc", "segbench"} <= tools


def test_every_page_of_the_site_is_checked():
    """The README is one page now; the commands it showed live in docs/ (the MkDocs site) and are checked there."""
    import yaml

    nav = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    pages = {REPO_ROOT / "docs" / page for entry in nav for page in entry.values()}
    assert pages <= set(DOCS), f"not checked: {sorted(map(str, pages - set(DOCS)))}"
    in_docs = {strip_env(shlex.split(c))[0] for where, c in COMMANDS if where.startswith("docs/")}
    assert {"make", "snakemake", "dvc", "segbench"} <= in_docs


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w} {c}"[:90] for w, c in COMMANDS])
def test_documented_command_runs_as_dry_run(where, command):
    check(where, command)
