"""The effective schedule (segbench.schedule): resolved once, recorded in config.json, read without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from segbench.data import prepare
from segbench.engine.runner import train_run
from segbench.errors import InputError
from segbench.plan import plan
from segbench.registry import resolve_run
from segbench.schedule import effective_schedule


def test_config_json_records_the_schedule_that_trained(tmp_path):
    data = tmp_path / "data"
    prepare("em_smoke", data)
    cfg = resolve_run("unet_isbi", "smoke", 0)
    cfg["schedule"].update(iterations=3)
    run_dir = tmp_path / "unet"
    done = train_run(cfg, run_dir, data)
    recorded = json.loads((run_dir / "config.json").read_text())
    # the record is what the loop ran (train_done.json's summary), after the family's defaults
    assert recorded["schedule"] == done["summary"]["schedule"] == effective_schedule(cfg).record()
    assert recorded["schedule"]["iterations"] == 3 and recorded["schedule"]["momentum"] == 0.99
    assert recorded["config"]["schedule"] == cfg["schedule"]  # the hashed block is as the registry gave it

    classical = resolve_run("threshold_isbi", "smoke", 0)
    train_run(classical, tmp_path / "threshold", data)
    assert json.loads((tmp_path / "threshold" / "config.json").read_text())["schedule"] is None


def test_plan_reads_schedules_without_torch():
    code = (
        "import sys; from segbench.plan import plan; p = plan('reproduce_all', 'paper'); "
        "assert p.runs; assert 'torch' not in sys.modules, 'plan imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plan_costs_every_trained_family():
    runs = plan("reproduce_all", "mini").runs
    window = [r for r in runs if r.family == "sliding_window"]
    assert window and all(r.iterations > 0 and "classical" not in r.source for r in window)
    classical = [r for r in runs if r.family == "classical"]
    assert classical and all(r.iterations == 0 for r in classical)


def test_unknown_family_is_one_line():
    cfg = {**resolve_run("unet_isbi", "smoke", 0), "family": "transformer"}
    with pytest.raises(InputError, match="unknown model family 'transformer'"):
        effective_schedule(cfg)
