"""The run records: a changed registry entry retrains from scratch (old files set aside, not resumed)."""

from __future__ import annotations

import json

from segbench.data import prepare
from segbench.engine.runner import train_run
from segbench.provenance import config_hash
from segbench.registry import resolve_run


def test_changed_config_sets_old_training_aside_and_retrains(tmp_path):
    data = tmp_path / "data"
    prepare("em_smoke", data)
    cfg = resolve_run("threshold_isbi", "smoke", 0)
    run_dir = tmp_path / "run"
    first = train_run(cfg, run_dir, data)
    changed = {**cfg, "model": {**cfg["model"], "sigma_px": 3.0}}
    second = train_run(changed, run_dir, data)
    assert first["config_hash"] != second["config_hash"] == config_hash(changed)
    stale = run_dir / f"stale-{first['config_hash']}"
    assert json.loads((stale / "train_done.json").read_text())["config_hash"] == first["config_hash"]
    assert json.loads((run_dir / "config.json").read_text())["config_hash"] == config_hash(changed)
    assert train_run(changed, run_dir, data) == second  # up to date: nothing retrained
