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
import shutil
import sys
from collections.abc import Mapping
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
        return (f"no `segbench` command beside {sys.executable} or on PATH: run `make install` and "
                "`source .venv/bin/activate` (or call .venv/bin/snakemake)")
    return None


def retrain_requested() -> bool:
    """True when the workflow asked training jobs to start from scratch (``SEGBENCH_RETRAIN=1``)."""
    return os.environ.get(RETRAIN_ENV, "") not in ("", "0")
