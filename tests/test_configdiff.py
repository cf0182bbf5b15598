"""segbench diff and the table pages' config differences: computed from the runs' recorded config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segbench.cli import main
from segbench.configdiff import ABSENT, config_diff, flatten, table_run_configs
from segbench.errors import InputError
from segbench.registry import resolve_run


def write_config(results: Path, scale: str, run: str, seed: int) -> None:
    run_dir = results / scale / "runs" / f"{run}-seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = resolve_run(run, scale, seed)
    (run_dir / "config.json").write_text(json.dumps({"run": run, "config": config}), encoding="utf-8")


def test_flatten_and_diff_use_dotted_keys_and_ignore_identity() -> None:
    a = {"run": "a", "seed": 0, "model": {"roi": "pool", "blocks": [1, 2]}, "input": {"tile": 4}}
    b = {"run": "b", "seed": 1, "model": {"roi": "align", "blocks": [1, 2]}}
    assert flatten(a) == {"run": "a", "seed": 0, "model.roi": "pool", "model.blocks": [1, 2], "input.tile": 4}
    diff = config_diff({"A": a, "B": b})
    assert [d["key"] for d in diff] == ["input.tile", "model.roi"]
    assert diff[0]["values"] == {"A": 4, "B": ABSENT}
    assert config_diff({"A": a, "B": dict(a, seed=7)}) == []


def test_cli_prints_one_line_per_differing_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path, "mini", "r50_c4_roipool", 0)
    write_config(tmp_path, "mini", "r50_c4", 0)
    write_config(tmp_path, "mini", "r50_c4", 1)
    assert (
        main(["diff", "r50_c4_roipool-seed0", "r50_c4", "--scale", "mini", "--results", str(tmp_path)]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["model.roi_aggregation: max -> avg", "model.roi_layer: roi_pool -> roi_align"]
    main(["diff", "r50_c4", "r50_c4-seed1", "--scale", "mini", "--results", str(tmp_path)])
    assert "same configuration" in capsys.readouterr().out


def test_cli_names_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path, "mini", "r50_c4", 0)
    assert main(["diff", "r50_c4", "r50_fpn", "--scale", "mini", "--results", str(tmp_path)]) != 0
    assert "r50_fpn-seed0" in capsys.readouterr().err


def test_table_configs_follow_the_rows_and_skip_unrecorded_runs(tmp_path: Path) -> None:
    for run in ("r50_c4_roipool", "r50_c4"):
        write_config(tmp_path, "mini", run, 1)
    (tmp_path / "mini" / "runs" / "r50_c4_softmax-seed0").mkdir(parents=True)
    table = {
        "scale": "mini",
        "rows": [{"runs": ["r50_c4_roipool"]}, {"runs": ["r50_c4_softmax"]}, {"runs": ["r50_c4"]}],
        "runs": {"r50_c4-seed1": {}, "r50_c4_roipool-seed1": {}, "r50_c4_softmax-seed0": {}},
    }
    configs = table_run_configs(table, tmp_path)
    assert list(configs) == ["r50_c4_roipool", "r50_c4"]
    with pytest.raises(InputError, match="config.json: missing"):
        from segbench.configdiff import run_config

        run_config(tmp_path / "mini" / "runs" / "r50_c4_softmax-seed0")
