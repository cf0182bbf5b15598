"""Caveats of a claim, computed from the run records of its two rows, never written by hand.

A claim compares two rows that should differ in one factor (the RoI layer, the backbone). What else
differs is a caveat the reader must see beside the verdict:

* training-protocol settings that differ between the two sides (``schedule.*``, ``input.*``,
  ``dataset.*`` of the recorded ``config.json``): e.g. ResNet-101's longer warm-up in Table 2a;
* runs whose training loss had not levelled off (:func:`segbench.trainlog.log_convergence`);
* runs trained with different code (``segbench/`` differs between their commits) or on different machines.

Model and pretraining keys are the factor itself or follow from it (ResNet-101's pretraining depth), and
bookkeeping keys (checkpoint and evaluation cadence) change no result; neither is a caveat.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from segbench.configdiff import ABSENT, config_diff, format_value, run_config
from segbench.errors import InputError
from segbench.paths import record_run_dir
from segbench.provenance import source_tree

PROTOCOL_PREFIXES = ("schedule.", "input.", "dataset.")
BOOKKEEPING_KEYS = frozenset({"schedule.checkpoint_every", "schedule.eval_points", "schedule.eval_every"})
MAX_KEYS = 4


def row_run(row: dict[str, Any], column: str) -> str | None:
    """The run behind ``row``'s cell in ``column`` (``run`` or ``column_runs``); ``None`` for other rows."""
    if "run" in row:
        return row["run"]
    return row.get("column_runs", {}).get(column)


#: a run definition's key that sets recorded keys under another name: ``budget`` scales the schedule
DEFINITION_SETS = {"budget": "schedule."}


def factor_keys(definition_a: dict[str, Any], definition_b: dict[str, Any]) -> tuple[str, ...]:
    """The claim's own factor: the keys in which the two runs' registry definitions differ (the recorded
    keys they set: ``budget`` -> ``schedule.*``)."""
    keys = [d["key"] for d in config_diff({"a": definition_a, "b": definition_b})]
    return tuple(DEFINITION_SETS.get(k, k) for k in keys)


def protocol_caveat(
    run_a: str, run_b: str, configs: dict[str, dict[str, Any]], definitions: dict[str, dict[str, Any]]
) -> str | None:
    """The training-protocol keys whose recorded values differ between the two runs (both present),
    beyond the keys in which the runs' registry definitions differ (the claim's factor)."""
    if run_a == run_b or run_a not in configs or run_b not in configs:
        return None
    factor = factor_keys(definitions.get(run_a, {}), definitions.get(run_b, {}))
    differing = [
        d
        for d in config_diff({run_a: configs[run_a], run_b: configs[run_b]})
        if d["key"].startswith(PROTOCOL_PREFIXES)
        and not d["key"].startswith(factor)
        and d["key"] not in BOOKKEEPING_KEYS
        and ABSENT not in (d["values"][run_a], d["values"][run_b])
    ]
    if not differing:
        return None
    shown = [
        f"{d['key']} {format_value(d['values'][run_a])} vs {format_value(d['values'][run_b])}"
        for d in differing[:MAX_KEYS]
    ]
    more = f" (+{len(differing) - MAX_KEYS} more)" if len(differing) > MAX_KEYS else ""
    return "protocol differs beyond the claim's factor: " + ", ".join(shown) + more


def convergence_caveat(runs: list[str], convergence: dict[str, list[dict[str, Any]]]) -> str | None:
    """Runs with seeds whose loss had not levelled off, as ``run (k/m seeds)``."""
    parts = []
    for run in dict.fromkeys(runs):
        seeds = [s for s in convergence.get(run, []) if s.get("converged") is not None]
        stalled = [s for s in seeds if not s["converged"]]
        if stalled:
            parts.append(f"{run} ({len(stalled)}/{len(seeds)} seeds)")
    return "loss not levelled off: " + ", ".join(parts) if parts else None


def origin_caveats(
    runs: list[str],
    records: dict[str, list[dict[str, Any]]],
    code_of: Callable[[str], str | None] = source_tree,
) -> list[str]:
    """Runs of the two sides trained with different code or on more than one machine.

    The commit is the training record's (``trained_at``, :func:`segbench.tables.aggregate.trained_at`: a
    run re-evaluated later at another commit is still where it was trained), else the metrics.json's (an
    untrained baseline). Commits are compared by ``code_of`` (the tree of ``segbench/``): runs trained at
    two commits that changed only results or docs trained with the same code, and no caveat is due. A
    commit whose code cannot be looked up (``+dirty``, not in this clone) counts as code of its own, and
    the caveat then says only that the commits differ. The machine is the metrics.json's signature (the
    training record keeps no signature in the table)."""
    commits: dict[str, set[str]] = {}
    codes: set[str] = set()
    unresolved = False
    machines: set[str] = set()
    for run in dict.fromkeys(runs):
        for rec in records.get(run, []):
            prov = rec.get("provenance", {})
            commit = str((rec.get("trained_at") or {}).get("git_commit") or prov.get("git_commit", "?"))
            commits.setdefault(run, set()).add(commit[:7])
            code = code_of(commit)
            unresolved |= code is None
            codes.add(code or commit)
            machines.add(str(prov.get("machine_signature_hash") or prov.get("device") or "?"))
    out = []
    if len(codes) > 1:
        what = "different commits" if unresolved else "commits whose segbench/ differs"
        out.append(
            f"trained at {what}: "
            + "; ".join(f"{run} at {', '.join(sorted(c))}" for run, c in commits.items())
        )
    if len(machines) > 1:
        out.append(f"trained on {len(machines)} different machines")
    return out


def first_config(run: str, scale: str, root: Path, seeds: list[int]) -> dict[str, Any] | None:
    """The recorded config of ``run``'s first seed with a readable ``config.json``."""
    from segbench.registry import run_id

    for seed in seeds:
        try:
            return run_config(record_run_dir(root, scale, run_id(run, seed)))
        except InputError:
            continue
    return None
