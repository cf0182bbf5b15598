"""The orchestration layer: Snakemake lint and dry-runs of every target, DVC's dry run, the CLI's list."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from segbench.paths import REPO_ROOT
from segbench.registry import artifacts, table_defined_at

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
TARGETS = [f"reproduce_{a}" for a in artifacts()]


def run(cmd: list[str], cwd: Path = REPO_ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def snakemake(*args: str, cwd: Path = REPO_ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return run([str(BIN / "snakemake"), *args], cwd=cwd, timeout=timeout)


def test_lint_passes():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_every_artifact_has_a_target_rule():
    result = snakemake("--list-target-rules")
    assert result.returncode == 0, result.stderr
    listed = set(result.stdout.split())
    expected = {
        "reproduce_table1",
        "reproduce_table2",
        *(f"reproduce_table2{c}" for c in "abcde"),
        "reproduce_class_agnostic",
        "reproduce_roialign_fpn",
        "reproduce_table3",
        "reproduce_table4",
        "reproduce_table5",
        "reproduce_table6",
        "reproduce_unet_table1",
        "reproduce_unet_table2",
        "reproduce_all",
    }
    assert expected <= listed and set(TARGETS) <= listed


@pytest.mark.parametrize("scale", ["smoke", "mini", "paper", "rehearsal"])
def test_dry_run_of_every_target(scale, tmp_path):
    # the targets with a table at the scale (em_maskrcnn exists at smoke, mini and real_cpu only)
    defined = [t for t, tables in artifacts().items() if any(table_defined_at(n, scale) for n in tables)]
    assert ("em_maskrcnn" in defined) == (scale in ("smoke", "mini")) and len(defined) >= len(TARGETS) - 1
    result = snakemake(
        "-n",
        *[f"reproduce_{t}" for t in defined],
        "--config",
        f"scale={scale}",
        f"results={tmp_path}/results",
        f"reports={tmp_path}/reports",
        f"data_root={tmp_path}/data",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train" in result.stdout and "evaluate" in result.stdout
    if scale == "paper":
        assert "gpu=8" in result.stdout.replace(" ", "")  # Mask R-CNN asks for the paper's 8 GPUs


def test_dry_run_at_the_real_data_cpu_scale(tmp_path):
    """real_cpu defines the tables on ISBI 2012: U-Net Table 1 builds its 15 fold runs, reproduce_all also
    em_maskrcnn's; a COCO Mask R-CNN target stops with one line naming the scale."""
    config = [
        "--config",
        "scale=real_cpu",
        f"results={tmp_path}/results",
        f"reports={tmp_path}/reports",
        f"data_root={tmp_path}/data",
    ]
    for target in ("reproduce_unet_table1", "reproduce_all"):
        result = snakemake("-n", target, *config)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "swcnn_isbi-seed4" in result.stdout and "r50_c4" not in result.stdout.replace("em_r50_c4", "")
        assert ("em_r50_c4-seed4" in result.stdout) == (target == "reproduce_all")
    result = snakemake("-n", "reproduce_table2", *config)
    assert result.returncode != 0
    assert (
        "table2a, table2b, table2c, table2d, table2e not defined at scale 'real_cpu'"
        in result.stdout + result.stderr
    )


def test_dvc_dry_run(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git absent")
    result = run([str(BIN / "dvc"), "repro", "--dry"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for table in artifacts()["all"]:
        assert f"reproduce_{table}" in result.stdout


def test_list_json_lists_every_table_with_rows_and_scales():
    result = run([str(BIN / "segbench"), "list", "--json"])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["tables"]) == set(artifacts()["all"])
    for name, table in data["tables"].items():
        assert table["rows"] and {"smoke", "mini"} <= set(table["scales"])
        # em_maskrcnn: a study of ours on the real ISBI stack's cells (real_cpu), not a paper table
        if name != "em_maskrcnn":
            assert {"paper", "rehearsal"} <= set(table["scales"]), name
    assert set(data["tables"]["em_maskrcnn"]["scales"]) == {"smoke", "mini", "real_cpu"}
    assert set(data["tables"]["unet_table1"]["scales"]) == {"smoke", "mini", "paper", "rehearsal", "real_cpu"}
    assert "real_cpu" not in data["tables"]["table2a"]["scales"]
    assert "paper_short" in data["tables"]["table2c"]["scales"]  # derived scales, expanded
    assert "paper_short" not in data["tables"]["table2a"]["scales"]
    peer = data["tables"]["table1"]["rows"][0]
    assert peer["reference_only"] and peer["runs"] == []


@pytest.mark.slow
def test_smoke_run_of_every_target_and_snakemake_report(tmp_path):
    """The whole DAG at the smoke scale: data -> train -> evaluate -> tables -> report pages -> figures,
    then Snakemake's own report of it."""
    config = [
        "--config",
        "scale=smoke",
        f"results={tmp_path}/results",
        f"reports={tmp_path}/reports",
        f"data_root={tmp_path}/data",
    ]
    result = snakemake("--cores", "2", "reproduce_all", *config, timeout=1800)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    for table in artifacts()["all"]:
        data = json.loads((tmp_path / "results" / "smoke" / "tables" / f"{table}.json").read_text())
        assert data["scale"] == "smoke" and data["provenance"]["git_commit"]
        assert (tmp_path / "reports" / "smoke" / f"{table}.html").is_file()
    assert (tmp_path / "reports" / "smoke" / "index.html").is_file()
    report = tmp_path / "snakemake_report.html"
    result = snakemake("--report", str(report), "reproduce_all", *config, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert report.stat().st_size > 10_000


def test_an_unknown_scale_is_named_in_the_last_lines():
    result = snakemake("-n", "reproduce_table2", "--config", "scale=bogus")
    assert result.returncode != 0
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-3:])
    assert "unknown scale 'bogus' (choose smoke, mini, paper" in tail, tail


def test_the_rehearsal_ci_target_trains_and_evaluates_exactly_the_registrys_ci_runs(tmp_path):
    """`make rehearse-ci` (snakemake rehearse_ci at scale rehearsal): scales.rehearsal.ci_runs, seed 0."""
    from segbench.registry import load_registry

    ci_runs = load_registry()["scales"]["rehearsal"]["ci_runs"]
    result = snakemake(
        "-n",
        "rehearse_ci",
        "--config",
        "scale=rehearsal",
        f"results={tmp_path}/results",
        f"reports={tmp_path}/reports",
        f"data_root={tmp_path}/data",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    trained = set(re.findall(r"segbench train --run (\S+) --scale rehearsal --seed 0", result.stdout))
    assert trained == set(ci_runs)
    assert result.stdout.count("segbench evaluate --run") == len(ci_runs)


def test_paper_short_defines_only_table_2b_to_2e(tmp_path):
    config = ["--config", "scale=paper_short", f"results={tmp_path}/results", f"data_root={tmp_path}/data"]
    result = snakemake("-n", "reproduce_table2c", *config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "r50_c4_roipool-seed0" in result.stdout
    result = snakemake("-n", "reproduce_table2a", *config)
    assert result.returncode != 0 and "not defined at scale 'paper_short'" in result.stdout + result.stderr
