"""Which segbench checkout a command works in: the one the current directory is in, else the installed one.

A user with two clones (or a package installed from one and a shell in another) gets the results and the
workflow settings of the clone they are in; outside any checkout the command says on stderr which results
root it uses.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from segbench.errors import InputError
from segbench.paths import REPO_ROOT, check_results_dir

#: files that make a folder a segbench checkout
MARKERS = ("segbench/__init__.py", "segbench/registry/experiments.yaml", "workflow/Snakefile")
WORKFLOW_CONFIG = "config/config.yaml"


def is_checkout(folder: Path) -> bool:
    return all((folder / marker).is_file() for marker in MARKERS)


def checkout_of(start: Path | None = None) -> Path | None:
    """The segbench checkout that contains ``start`` (default: the current directory), or ``None``."""
    here = (start or Path.cwd()).resolve()
    return next((folder for folder in (here, *here.parents) if is_checkout(folder)), None)


def default_results(value: str | os.PathLike[str] | None, command: str, *, must_exist: bool = False) -> Path:
    """``--results`` as given (a file refused; with ``must_exist``, a missing folder too), else ``results/``
    of the checkout the current directory is in; outside a checkout, the installed checkout's, said in one
    stderr line."""
    if value:
        return check_results_dir(Path(value).expanduser().resolve(), value, must_exist=must_exist)
    checkout = checkout_of()
    if checkout is not None:
        return checkout / "results"
    root = REPO_ROOT / "results"
    print(
        f"segbench {command}: results root {root} (the current directory is not in a segbench checkout; "
        "--results chooses another)",
        file=sys.stderr,
    )
    return root


def workflow_threads(checkout: Path | None = None) -> int:
    """``train_threads`` of the workflow config (``config/config.yaml`` of the current checkout, else of
    the installed one): the torch threads every training job of the workflow uses; 1 where unset."""
    path = (checkout or checkout_of() or REPO_ROOT) / WORKFLOW_CONFIG
    if not path.is_file():
        return 1
    try:
        value = (yaml.safe_load(path.read_text()) or {}).get("train_threads", 1)
    except (yaml.YAMLError, AttributeError) as exc:
        raise InputError(f"{path}: not a YAML mapping ({exc}); fix it or pass --threads") from None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(
            f"{path}: train_threads {value!r} must be a positive integer; fix it or pass --threads"
        )
    return value


def set_threads(threads: int) -> None:
    """Use ``threads`` torch intra-op threads (and tell OpenMP children so)."""
    if threads < 1:
        raise InputError(f"--threads {threads}: must be at least 1")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
