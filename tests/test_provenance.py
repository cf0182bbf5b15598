"""Provenance: the commit is marked dirty by code changes, not by the DAG rewriting committed results."""

from __future__ import annotations

import subprocess
from pathlib import Path

from segbench.provenance import git_commit


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_results_and_reports_do_not_make_the_commit_dirty(tmp_path: Path) -> None:
    for rel in ("segbench/code.py", "results/mini/tables/t.json", "reports/mini/index.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("v1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "init")
    sha = git(tmp_path, "rev-parse", "HEAD")
    assert git_commit(tmp_path) == sha
    (tmp_path / "results/mini/tables/t.json").write_text("v2\n")
    (tmp_path / "reports/mini/index.html").write_text("v2\n")
    (tmp_path / "untracked.py").write_text("x\n")
    git_commit.cache_clear()
    assert git_commit(tmp_path) == sha  # the run's own outputs, and untracked files, are not code changes
    (tmp_path / "segbench/code.py").write_text("v2\n")
    git_commit.cache_clear()
    assert git_commit(tmp_path) == sha + "+dirty"
    git_commit.cache_clear()


def test_outside_git_is_unknown(tmp_path: Path) -> None:
    git_commit.cache_clear()
    assert git_commit(tmp_path / "nowhere") == "unknown"
    git_commit.cache_clear()
