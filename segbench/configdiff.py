"""Which configuration keys differ between runs: the resolved configs their ``config.json`` recorded.

A config is flattened to dotted keys (``model.roi_layer``; lists stay one value), and the keys whose
values are not the same in every run are the difference. A run's identity (``run``, ``run_id``,
``seed``) always differs and is left out. ``segbench diff`` prints it for two run instances; a table's
page shows it for the table's runs (seed 0 of each, or its first recorded seed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.io import read_json
from segbench.paths import record_run_dir
from segbench.registry import split_run_id

IDENTITY_KEYS = frozenset({"run", "run_id", "seed"})
ABSENT = "(absent)"


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"arch": "c4"}}`` -> ``{"model.arch": "c4"}``; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(configs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Keys (sorted) whose flattened values differ between the named ``configs``:
    ``[{"key": "model.roi_layer", "values": {name: value or ABSENT}}]``."""
    flat = {name: flatten(config) for name, config in configs.items()}
    keys = sorted({k for f in flat.values() for k in f} - IDENTITY_KEYS)
    out = []
    for key in keys:
        values = {name: f.get(key, ABSENT) for name, f in flat.items()}
        if len({repr(v) for v in values.values()}) > 1:
            out.append({"key": key, "values": values})
    return out


def first_difference(recorded: dict[str, Any], current: dict[str, Any]) -> str | None:
    """``"optimizer.lr: recorded 0.5, the registry gives 0.02"`` for the first key (sorted) whose value
    differs between two configs (compared as :func:`segbench.provenance.config_hash` sees them: canonical
    JSON, so ``1`` and ``1.0`` differ), identity keys included; None where they are the same."""

    def canonical(value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    a, b = flatten(json.loads(canonical(recorded))), flatten(json.loads(canonical(current)))
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key, ABSENT), b.get(key, ABSENT)
        if canonical(old) != canonical(new):
            return f"{key}: recorded {format_value(old)}, the registry gives {format_value(new)}"
    return None


def format_value(value: Any) -> str:
    if isinstance(value, str):  # ABSENT included
        return value
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def run_config(run_dir: Path) -> dict[str, Any]:
    """The resolved config a run instance recorded (``config.json``'s ``config``)."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise InputError(
            f"{path}: missing; train the run first (segbench train --run <run> --scale <scale> --seed <k>)"
        )
    record = read_json(path, "run config")
    config = record.get("config") if isinstance(record, dict) else None
    if not isinstance(config, dict):
        raise InputError(f"{path}: no 'config' object; re-train the run (segbench train ... --force)")
    return config


def table_run_configs(table: dict[str, Any], results: Path) -> dict[str, dict[str, Any]]:
    """One recorded config per run of an assembled table (its lowest seed with a config.json), by run
    name, in the order the table's rows use them. Runs without a readable config.json are left out."""
    by_run: dict[str, list[str]] = {}
    for rid in sorted(table.get("runs", {})):
        by_run.setdefault(split_run_id(rid)[0], []).append(rid)
    ordered = []
    for row in table.get("rows", []):
        ordered += [r for r in row.get("runs", []) if r in by_run and r not in ordered]
    ordered += [r for r in by_run if r not in ordered]
    out = {}
    for run in ordered:
        seeds = sorted(by_run[run], key=lambda rid: split_run_id(rid)[1] or 0)
        for rid in seeds:
            try:
                out[run] = run_config(record_run_dir(results, table["scale"], rid))
            except InputError:  # not trained yet, or an older record: the page says so, no crash
                continue
            break
    return out
