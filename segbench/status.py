"""What a target's results on disk say before anything runs: which run instances are current, which
are stale or missing, which assembled tables no longer match their runs.

``segbench status TARGET`` prints it; ``make reproduce`` prints it before starting, so a user sees
what will be retrained and why, and how to only re-assemble the committed results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.io import read_json, sha256_file
from segbench.paths import record_run_dir, results_root, runs_dir, table_file
from segbench.provenance import config_hash
from segbench.registry import artifacts, load_registry, resolve_run, row_runs, runs_for_tables

#: State of one run instance, from its records against the registry's config.
CURRENT, UNEVALUATED, STALE, MISSING = "current", "trained, not evaluated", "stale", "missing"
TRAINED = (CURRENT, UNEVALUATED)  # the states in which training is done and up to date


@dataclass(frozen=True)
class RunState:
    run_id: str
    state: str
    reason: str


@dataclass
class TargetStatus:
    artifact: str
    scale: str
    results: Path
    runs: list[RunState] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)  # table -> "current" | "missing" | "stale: ..."

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.runs)


def assembled_with(
    artifact: str, registry: dict[str, Any] | None = None, scale: str | None = None
) -> list[str]:
    """The artifact's tables plus every other table all of whose runs the artifact trains: assembling
    those costs nothing and keeps tables that share runs consistent (Table 1 shows 2a's runs). With
    ``scale``, ``all`` and the added tables are limited to the tables defined at that scale."""
    reg = registry or load_registry()
    arts = artifacts(reg)
    if artifact not in arts:
        raise InputError(
            f"unknown table or artifact {artifact!r}; `segbench list` shows them: {', '.join(arts)}"
        )

    def defined(name: str) -> bool:
        return scale is None or scale in reg["tables"][name]["seeds"]

    own = [t for t in arts[artifact] if artifact != "all" or defined(t)]
    trained = {run for t in own for row in reg["tables"][t]["rows"] for run in row_runs(row)}
    for name, table in reg["tables"].items():
        needed = {run for row in table["rows"] for run in row_runs(row)}
        if name not in own and needed and needed <= trained and defined(name):
            own.append(name)
    return own


def is_trained(cfg: dict[str, Any], run_dir: Path) -> bool:
    """``train_done.json`` exists and records this config's hash."""
    done = run_dir / "train_done.json"
    return done.exists() and read_json(done, "train record").get("config_hash") == config_hash(cfg)


def is_evaluated(cfg: dict[str, Any], run_dir: Path) -> bool:
    """``metrics.json`` exists and records this config's hash."""
    metrics = run_dir / "metrics.json"
    return metrics.exists() and read_json(metrics, "run metrics").get("config_hash") == config_hash(cfg)


def run_state(cfg: dict[str, Any], run_dir: Path) -> RunState:
    """The one staleness rule, which ``segbench status``, the runner (train or not, from scratch or not),
    the Snakefile (``stale_training``) and table assembly consult: missing, stale (another config hash, a
    recorded config edited behind its hash, or another backbone than the pinned one), trained but not
    evaluated, or current."""
    done = run_dir / "train_done.json"
    if not done.exists():
        return RunState(cfg["run_id"], MISSING, f"no {done.name}")
    if not is_trained(cfg, run_dir):
        recorded = read_json(done, "train record").get("config_hash")
        return RunState(
            cfg["run_id"], STALE, f"trained with config {recorded}, the registry now gives {config_hash(cfg)}"
        )
    edited = recorded_config_differs(cfg, run_dir)
    if edited:
        return RunState(cfg["run_id"], STALE, edited)
    backbone = backbone_differs(cfg, run_dir)
    if backbone:
        return RunState(cfg["run_id"], STALE, backbone)
    if not is_evaluated(cfg, run_dir):
        return RunState(cfg["run_id"], UNEVALUATED, "no current metrics.json")
    return RunState(cfg["run_id"], CURRENT, "recorded config and its hash match the registry")


def backbone_differs(cfg: dict[str, Any], run_dir: Path) -> str | None:
    """Why a run is not the one its pinned pretrained backbone would train: it records a backbone sha256
    (``train_done.json`` provenance) other than the one the backbone's record now pins (after ``segbench
    pretrain --force``). None where the scale pretrains nothing, nothing is pinned, or the run predates
    the recording (it cannot say which weights it started from)."""
    if not cfg.get("pretraining"):
        return None
    from segbench.paths import pinned_sha256, run_pretrained_weights

    weights = run_pretrained_weights(cfg, run_dir)
    pinned = pinned_sha256(weights)
    trained = read_json(run_dir / "train_done.json", "train record").get("provenance") or {}
    used = (trained.get("backbone") or {}).get("sha256")
    if pinned is None or used is None or used == pinned:
        return None
    return (
        f"trained from backbone {weights.name} sha256 {used[:12]}, the committed one is {pinned[:12]}; "
        "retrain with segbench train --force"
    )


def recorded_config_differs(cfg: dict[str, Any], run_dir: Path) -> str | None:
    """Why the config a run recorded (``config.json``'s ``config``, not only its hash) is not the registry's
    ``cfg``: the first key that differs, or a record without its config; None where they are the same, or
    where there is no ``config.json`` to compare (the recorded hash then decides alone)."""
    from segbench.configdiff import first_difference

    path = run_dir / "config.json"
    if not path.is_file():
        return None
    record = read_json(path, "run config")
    recorded = record.get("config") if isinstance(record, dict) else None
    if not isinstance(recorded, dict):
        return f"{path} records no config (no 'config' object); retrain with segbench train --force"
    diff = first_difference(recorded, cfg)
    if diff is None:
        return None
    return f"{path} differs from the registry at {diff}; retrain with segbench train --force"


def table_state(name: str, scale: str, root: Path) -> str:
    """``current``, ``missing`` or ``stale: <why>``: a table is stale when a run's ``metrics.json``
    changed after the table was assembled (its recorded sha256 differs)."""
    path = table_file(root, scale, name)
    if not path.exists():
        return "missing"
    runs = read_json(path, "table").get("runs", {})
    changed = []
    for run_id, record in runs.items():
        metrics = record_run_dir(root, scale, run_id, source=path) / "metrics.json"
        recorded = record.get("metrics_sha256")
        if not metrics.exists():
            changed.append(f"{run_id} (metrics.json missing)")
        elif recorded and recorded != sha256_file(metrics):
            changed.append(run_id)
    if changed:
        return f"stale: {', '.join(changed)} changed since assembly"
    return "current"


def table_runs_changed(name: str, scale: str, root: Path, registry: dict[str, Any] | None = None) -> bool:
    """Whether an assembled table's run instances differ from those the registry now lists for it (a row or
    seed added or removed); ``False`` where the table is not assembled yet."""
    path = table_file(root, scale, name)
    if not path.exists():
        return False
    recorded = set(read_json(path, "table").get("runs", {}))
    return recorded != {rs.run_id for rs in runs_for_tables([name], scale, registry or load_registry())}


def target_status(artifact: str, scale: str, results: str | Path | None = None) -> TargetStatus:
    reg = load_registry()
    root = results_root(results)
    tables = assembled_with(artifact, reg, scale)
    status = TargetStatus(artifact, scale, root)
    for rs in runs_for_tables(tables, scale, reg):
        cfg = resolve_run(rs.run, scale, rs.seed, reg)
        status.runs.append(run_state(cfg, record_run_dir(root, scale, rs.run_id)))
    status.tables = {t: table_state(t, scale, root) for t in tables}
    return status


def describe(status: TargetStatus, *, retrain: bool = False) -> list[str]:
    """Human lines: what the target will run and why, before it starts."""
    n = len(status.runs)
    where = runs_dir(status.results, status.scale)
    lines = [f"reproduce_{status.artifact} at scale {status.scale}: {n} run instances under {where}"]
    if retrain:
        lines.append(
            f"  retrain: all {n} run instances train from scratch (old records are set aside in "
            "stale-<hash>/), then every table and page is re-assembled"
        )
        return lines
    current, unevaluated = status.count(CURRENT), status.count(UNEVALUATED)
    todo = [r for r in status.runs if r.state in (MISSING, STALE)]
    lines.append(
        f"  {current} current (trained and evaluated with the registry's config), "
        f"{unevaluated} to evaluate, {len(todo)} to train"
    )
    for r in todo[:12]:
        lines.append(f"    train {r.run_id}: {r.state} ({r.reason})")
    if len(todo) > 12:
        lines.append(f"    ... and {len(todo) - 12} more")
    stale_tables = {t: s for t, s in status.tables.items() if s != "current"}
    for table, state in stale_tables.items():
        lines.append(f"  table {table}: {state}")
    if not todo and not unevaluated:
        lines.append("  nothing to train: tables and pages are re-assembled from these results where needed")
    lines.append(
        "  to retrain every run from scratch instead: add FORCE=1 (make) or --forcerun train --config retrain=1"
    )
    return lines
