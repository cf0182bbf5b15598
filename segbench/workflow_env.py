"""The process environment the Snakemake rules run in, set up by the Snakefile before any job.

Rules call the ``segbench`` command of the Python that runs Snakemake, so ``.venv/bin/snakemake`` works
without an activated virtual environment; an activated conda env (``--use-conda``) still comes first
in its jobs. ``retrain`` (``--config retrain=1``, what ``make reproduce FORCE=1`` passes together with
``--forcerun train``) makes the training jobs that run start from scratch (``segbench train`` reads
``SEGBENCH_RETRAIN``); it is an environment variable, not a rule parameter, so that switching it does
not itself mark every run as changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RETRAIN_ENV = "SEGBENCH_RETRAIN"


def prepare_environment(config: Mapping[str, Any]) -> str | None:
    """Put this interpreter's ``bin`` first on ``PATH`` and export the retrain switch; returns a one-line
    error when no ``segbench`` command can be found, else ``None``."""
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    if config.get("retrain"):
        os.environ[RETRAIN_ENV] = "1"
    else:
        os.environ.pop(RETRAIN_ENV, None)
    if shutil.which("segbench") is None:
        return (
            f"no `segbench` command beside {sys.executable} or on PATH: run `make install` and "
            "`source .venv/bin/activate` (or call .venv/bin/snakemake)"
        )
    return None


def retrain_requested() -> bool:
    """True when the workflow asked training jobs to start from scratch (``SEGBENCH_RETRAIN=1``)."""
    return os.environ.get(RETRAIN_ENV, "") not in ("", "0")


#: DAG order of the committed result files (path pattern under the repository root -> level).
_LEVELS = [
    (re.compile(r"results/[^/]+/runs/[^/]+/(config\.json|train_log\.jsonl|eval_curve\.json)$"), 0),
    (re.compile(r"results/[^/]+/runs/[^/]+/train_done\.json$"), 1),
    (re.compile(r"results/[^/]+/runs/[^/]+/metrics\.json$"), 2),
    (re.compile(r"results/[^/]+/(tables|compare)/[^/]+$"), 3),
    (re.compile(r"reports/[^/]+/figures/[^/]+$"), 4),
    (re.compile(r"reports/[^/]+/[^/]+\.html$"), 5),
]


def settle_committed_mtimes(repo: Path, roots: tuple[str, ...] = ("results", "reports")) -> int:
    """Give the committed, unmodified result files modification times in DAG order (run records, then
    metrics, tables, figures, pages), all older than anything written since the checkout.

    ``git clone`` writes files in path order at arbitrary instants, so a clone's dates say nothing (a
    page may look older than its table, ``metrics.json`` older than ``train_done.json``) and Snakemake,
    which always compares dates, would rerun jobs that a clone cannot run (its weights are not in git).
    Files as committed are a consistent state, so ordering their dates is safe; a file changed since the
    checkout keeps its real date and so still reruns what depends on it. Returns the files settled;
    nothing happens outside a git work tree."""
    try:
        tracked = (
            subprocess.run(
                ["git", "-C", str(repo), "ls-files", "-z", "--", *roots],
                capture_output=True,
                check=True,
                timeout=60,
            )
            .stdout.decode()
            .split("\0")
        )
        changed = (
            subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "-z", "--", *roots],
                capture_output=True,
                check=True,
                timeout=60,
            )
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.SubprocessError):
        return 0
    modified = {entry[3:] for entry in changed if len(entry) > 3}
    levelled = []
    for rel in tracked:
        if not rel or rel in modified:
            continue
        level = next((lv for pattern, lv in _LEVELS if pattern.search(rel)), None)
        path = repo / rel
        if level is not None and path.is_file():
            levelled.append((path, level))
    if not levelled:
        return 0
    second = 1_000_000_000  # ns
    # only ever moves dates back (each file ends at base + level <= its date), and a second call is a no-op
    base = min(path.stat().st_mtime_ns - level * second for path, level in levelled)
    for path, level in levelled:
        stamp = base + level * second
        if path.stat().st_mtime_ns != stamp:
            os.utime(path, ns=(stamp, stamp))
    return len(levelled)
