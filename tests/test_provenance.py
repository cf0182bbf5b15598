"""Provenance: the commit is marked dirty by code changes, not by the DAG rewriting committed results; two
commits trained with the same code when their ``segbench/`` trees are equal."""

from __future__ import annotations

import subprocess
from pathlib import Path

from segbench.provenance import git_commit, source_tree


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


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


def test_source_tree_is_the_same_across_commits_that_change_only_results_or_docs(tmp_path: Path) -> None:
    """The code identity the claims' commit caveat compares (:func:`segbench.tables.caveats.origin_caveats`):
    equal for a commit that touched only results and docs, different once a file under segbench/ changes,
    and unknown (``None``) for a dirty, absent or malformed commit and outside git."""
    for rel in ("segbench/code.py", "results/mini/tables/t.json", "README.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("v1\n")
    git(tmp_path, "init", "-q")

    def commit(message: str) -> str:
        git(tmp_path, "add", "-A")
        git(tmp_path, "commit", "-qm", message)
        return git(tmp_path, "rev-parse", "HEAD")

    trained = commit("code")
    (tmp_path / "results/mini/tables/t.json").write_text("v2\n")
    (tmp_path / "README.md").write_text("v2\n")
    results_only = commit("results and docs")
    (tmp_path / "segbench/code.py").write_text("v2\n")
    code_changed = commit("code change")

    tree = source_tree(trained, tmp_path)
    assert tree and tree == git(tmp_path, "rev-parse", f"{trained}:segbench")
    assert source_tree(results_only, tmp_path) == tree
    assert source_tree(results_only[:7], tmp_path) == tree  # the short form the tables show
    assert source_tree(code_changed, tmp_path) not in (None, tree)
    assert source_tree(trained + "+dirty", tmp_path) is None
    assert source_tree("0" * 40, tmp_path) is None  # not in this clone
    assert source_tree("unknown", tmp_path) is None
    assert source_tree(trained, tmp_path / "nowhere") is None


def test_machine_signature_is_compact_stable_and_in_every_provenance() -> None:
    from segbench.provenance import machine_signature, machine_signature_hash, provenance, signature_hash

    sig = machine_signature()
    for key in (
        "cpu",
        "cpu_flags",
        "cpu_capability",
        "torch_libraries",
        "torch_build",
        "blas_builds",
        "threads",
    ):
        assert key in sig, key
    assert sig["cpu"] and isinstance(sig["threads"], int)
    assert all(flag.isidentifier() for flag in sig["cpu_flags"])
    assert len(sig["cpu_flags"]) <= 20  # filtered to the kernel-relevant extensions
    assert any(
        "MKL-DNN" in line or "oneDNN" in line or "capability" in line for line in sig["torch_libraries"]
    )
    assert machine_signature_hash() == machine_signature_hash() == signature_hash(dict(reversed(sig.items())))
    assert len(machine_signature_hash()) == 12
    assert signature_hash({**sig, "threads": sig["threads"] + 1}) != signature_hash(sig)
    record = provenance({"a": 1}, seeds=[0], scale="smoke")
    assert record["machine_signature"] == sig and record["machine_signature_hash"] == signature_hash(sig)
    for key in (
        "git_commit",
        "config_hash",
        "package_versions",
        "device",
        "host",
        "seeds",
        "scale",
        "wall_time_s",
        "created_utc",
    ):  # the existing keys stay
        assert key in record


def test_machine_signature_without_proc_cpuinfo(monkeypatch) -> None:
    from segbench import provenance as prov

    prov._cpu.cache_clear()
    monkeypatch.setattr(prov.Path, "read_text", lambda *a, **k: (_ for _ in ()).throw(OSError("absent")))
    try:
        model, flags = prov._cpu()
        assert model and flags == ()
    finally:
        prov._cpu.cache_clear()
