"""Every committed run is still the registry's: its recorded config hash is the hash of the config the
registry resolves for it today (a refactor that changes a resolved config must retrain, issue #37)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segbench.provenance import config_hash
from segbench.registry import load_registry, resolve_run, split_run_id

RESULTS = Path(__file__).resolve().parents[1] / "results"
COMMITTED = sorted(p for p in RESULTS.glob("*/runs/*/config.json") if not p.parent.name.startswith("stale-"))


def test_committed_runs_are_found():
    assert len(COMMITTED) >= 90, f"{len(COMMITTED)} committed runs under {RESULTS}"


@pytest.mark.parametrize("record", COMMITTED, ids=lambda p: f"{p.parts[-4]}/{p.parent.name}")
def test_committed_run_hash_is_the_registry_s(record: Path):
    scale = record.parts[-4]
    run, seed = split_run_id(record.parent.name)
    reg = load_registry()
    if run not in reg["runs"]:  # a compared method's run (segbench compare) is named by its plugin
        pytest.skip(f"{run}: not a registry run")
    recorded = json.loads(record.read_text())
    cfg = resolve_run(run, scale, seed or 0, reg)
    assert recorded["config_hash"] == config_hash(cfg), (record, recorded["config_hash"])
    assert recorded["config"] == json.loads(json.dumps(cfg)), record
