"""Where things live: the repository, the data root, the results tree, the shared development data."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The data root: an explicit value, else ``$SEGBENCH_DATA``, else ``<repo>/data``; one that exists but
    is not a folder is refused by name (not reported later as a full disk)."""
    env = os.environ.get("SEGBENCH_DATA")
    if override:
        root, source = Path(override).expanduser().resolve(), f"--data-root {override}"
    elif env:
        root, source = Path(env).expanduser().resolve(), f"SEGBENCH_DATA={env}"
    else:
        root, source = REPO_ROOT / "data", f"data root {REPO_ROOT / 'data'}"
    if root.exists() and not root.is_dir():
        from segbench.errors import InputError

        raise InputError(
            f"{source}: {root} is a file, not a folder; point it at the data folder "
            "(or an empty folder to prepare data into)"
        )
    return root


def shared_data_root() -> Path | None:
    """The read-only development data (``../shared/data`` beside the checkout, or
    ``$SEGBENCH_SHARED_DATA``); ``None`` where absent, so tests can skip."""
    env = os.environ.get("SEGBENCH_SHARED_DATA")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def results_root(override: str | os.PathLike[str] | None = None, *, must_exist: bool = False) -> Path:
    """``--results`` resolved (default ``<repo>/results``): a file there is refused in one line, and with
    ``must_exist`` (a command that only reads it) so is a folder that does not exist; a command that
    writes creates it."""
    if not override:
        return REPO_ROOT / "results"
    root = Path(override).expanduser().resolve()
    check_results_dir(root, override, must_exist=must_exist)
    return root


def check_results_dir(root: Path, given: str | os.PathLike[str], *, must_exist: bool = False) -> Path:
    """``root`` (from ``--results given``) if it is a folder, or absent where the command may create it."""
    from segbench.errors import InputError

    if root.exists() and not root.is_dir():
        raise InputError(
            f"--results {given}: {root} is a file, not a folder; point --results at the results folder "
            "(a command that writes creates it)"
        )
    if must_exist and not root.is_dir():
        raise InputError(
            f"--results {given}: {root} does not exist; point --results at an existing results folder "
            "(this command only reads it)"
        )
    return root


# -- the results layout: <results>/<scale>/{runs/<run id>, tables/<table>.<ext>, compare, pretrained} -----------
def scale_dir(
    results: str | os.PathLike[str], scale: str, *, source: str | os.PathLike[str] | None = None
) -> Path:
    """``<results>/<scale>``; a scale that would leave ``results`` is refused (naming ``source``)."""
    return child_path(results, scale, what="scale", source=source)


def runs_dir(results: str | os.PathLike[str], scale: str) -> Path:
    """``<results>/<scale>/runs``: one folder per run instance (:func:`record_run_dir`)."""
    return scale_dir(results, scale) / "runs"


def tables_dir(results: str | os.PathLike[str], scale: str) -> Path:
    """``<results>/<scale>/tables``: the assembled tables (``<table>.json``, ``.csv``, ``.md``)."""
    return scale_dir(results, scale) / "tables"


def table_file(results: str | os.PathLike[str], scale: str, table: str, suffix: str = ".json") -> Path:
    """``<results>/<scale>/tables/<table><suffix>``."""
    return child_path(tables_dir(results, scale), table, suffix, what="table")


def dvc_dir(results: str | os.PathLike[str], scale: str) -> Path:
    """``<results>/<scale>/dvc``: the flat metrics and plots data DVC shows (docs/dvc.md)."""
    return scale_dir(results, scale) / "dvc"


def weights_dir(results: str | os.PathLike[str], scale: str, table: str) -> Path:
    """``<results>/<scale>/weights/<table>``: the table's runs' final weights, a DVC-cached out."""
    return child_path(scale_dir(results, scale) / "weights", table, what="table")


def compare_dir(results: str | os.PathLike[str], scale: str) -> Path:
    """``<results>/<scale>/compare``: the comparisons of new methods with a table's baselines."""
    return scale_dir(results, scale) / "compare"


def bench_dir(results: str | os.PathLike[str] | None = None) -> Path:
    """``<results>/bench``: the ``segbench bench`` records."""
    return results_root(results) / "bench"


def reports_root(override: str | os.PathLike[str] | None = None) -> Path:
    """``--reports`` resolved (default ``<repo>/reports``): the HTML reports, one folder per scale."""
    return Path(override).resolve() if override else REPO_ROOT / "reports"


def bench_report_dir(reports: str | os.PathLike[str] | None = None) -> Path:
    """``<reports>/bench``: the benchmark page and its charts."""
    return reports_root(reports) / "bench"


def run_dir(scale: str, run_id: str, results: str | os.PathLike[str] | None = None) -> Path:
    return record_run_dir(results_root(results), scale, run_id)


def record_run_dir(
    results: str | os.PathLike[str],
    scale: str,
    run_id: str,
    *,
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """``<results>/<scale>/runs/<run_id>``: a scale or run id read from a record (a table JSON, a
    comparison, a run's own files) that would leave ``results`` is refused, naming ``source``."""
    return child_path(scale_dir(results, scale, source=source) / "runs", run_id, what="run", source=source)


def pretrained_weights(results: str | os.PathLike[str] | None, scale: str, spec: dict) -> Path:
    """The cached weights of a miniature-pretrained backbone (:mod:`segbench.engine.pretrain`):
    ``<results>/<scale>/pretrained/<backbone>-<spec hash>.pt``; its record is the ``.json`` beside it, its
    committed form the ``.pt.xz`` (:func:`stored_weights`)."""
    from segbench.provenance import config_hash

    folder = scale_dir(results_root(results), scale) / "pretrained"
    return child_path(folder, f"{spec['backbone']}-{config_hash(spec)}", ".pt", what="backbone")


def run_pretrained_weights(cfg: dict, run_dir: str | os.PathLike[str]) -> Path:
    """Where run ``cfg``'s miniature-pretrained backbone weights are: ``<results>/<scale>/pretrained/``,
    beside the run's ``runs/`` folder (sweeps name another results root: ``pretraining_results``); the
    scale is the one the run's scale takes its backbones from (``pretrained_from``: real_cpu uses mini's)."""
    results = cfg.get("pretraining_results") or Path(run_dir).resolve().parents[2]
    return pretrained_weights(results, pretraining_scale(cfg), cfg["pretraining"])


def pretraining_scale(cfg: dict) -> str:
    """The scale whose ``pretrained/`` folder holds run ``cfg``'s backbone: its ``pretrained_from``, else
    its own scale."""
    return str(cfg.get("pretrained_from") or cfg["scale"])


FINAL_MODEL = "model_final.pt"  # a run's trained weights (segbench.engine.checkpoint.save_final)


def final_model(run_dir: str | os.PathLike[str]) -> Path:
    """A run's trained weights: its ``model_final.pt``, else a copy pulled by ``dvc pull``
    (``<results>/<scale>/weights/<table>/<run_id>.pt``, written by ``segbench dvc export``; every copy
    is identity-checked on load). Where neither exists, the run's own path (for the error)."""
    folder = Path(run_dir)
    own = folder / FINAL_MODEL
    if own.is_file():
        return own
    pulled = sorted((folder.parents[1] / "weights").glob(f"*/{folder.name}.pt"))
    return pulled[0] if pulled else own


def stored_weights(weights: Path) -> Path:
    """The committed form of pretrained ``weights``: ``<name>.pt.xz`` beside them (xz keeps every committed
    file under the repository's 2 MB limit); the ``.pt`` itself is a local, gitignored copy decompressed
    from it on first use (:func:`segbench.engine.pretrain.restore_from_stored`)."""
    return weights.with_name(weights.name + ".xz")


def pinned_sha256(weights: Path) -> str | None:
    """The sha256 the record beside ``weights`` pins them to (``None``: no record, or one that predates
    pinning); :mod:`segbench.engine.pretrain` refuses a file that differs."""
    from segbench.io import read_json

    record = weights.with_suffix(".json")
    return read_json(record, "backbone record").get("weights_sha256") if record.exists() else None


def child_path(
    root: str | os.PathLike[str],
    name: str,
    suffix: str = "",
    *,
    what: str = "name",
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """``root / (name + suffix)`` for a name read from a file or the registry, refusing any name that would
    leave ``root`` (a separator, ``..``, an absolute path, a NUL byte): every place where such a name
    becomes a path goes through here. ``source`` names the file the name came from, for the error."""
    from segbench.errors import InputError

    text = str(name)
    where = f"{source}: " if source else ""
    bad = (
        not text
        or text in (".", "..")
        or "/" in text
        or "\\" in text
        or "\x00" in text
        or os.path.isabs(text)
        or text.startswith("..")
    )
    base = Path(root)
    if bad:
        raise InputError(
            f"{where}{what} {text!r} is not a plain file name (it would leave {base}); "
            "use letters, digits, '-', '_' and '.' only"
        )
    return base / f"{text}{suffix}"


def relative_child(
    root: str | os.PathLike[str],
    rel: str,
    *,
    what: str = "path",
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """``root / rel`` for a relative path read from a file (a dataset layout entry, a MANIFEST key), which
    may have sub-folders but no ``..``, no absolute start and no NUL byte."""
    text = str(rel)
    parts = text.replace("\\", "/").split("/")
    if (
        not text
        or "\x00" in text
        or os.path.isabs(text)
        or any(p in ("..",) for p in parts)
        or text[1:3] == ":\\"
    ):
        from segbench.errors import InputError

        where = f"{source}: " if source else ""
        raise InputError(f"{where}{what} {text!r} leaves {root}; use a path relative to it without '..'")
    return Path(root) / text
