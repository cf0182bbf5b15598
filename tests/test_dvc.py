"""DVC's view of the benchmark (dvc.yaml, ``segbench dvc export``, docs/dvc.md).

``dvc metrics show`` on the committed mini results (short lines), the committed mini export is what the
command writes, ``dvc plots show`` writes its HTML; and in a temporary git + DVC copy of the
repository at the smoke scale: ``dvc params diff`` names a registry key after an edit, and one tiny
run's weights, exported by the ``weights@<table>`` stage, go through ``dvc push`` / ``dvc pull`` to a
local remote, and ``segbench evaluate`` of the pulled run gives its metrics bit for bit.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import dvc_in_checkout
from test_faults import one_error_line

from segbench.cli import main
from segbench.dvcexport import export
from segbench.paths import REPO_ROOT

BIN = Path(sys.executable).parent
TABLE, RUN = "unet_table1", "unet_isbi-seed0"
RUN_ARGS = ("--run", "unet_isbi", "--scale", "smoke", "--seed", "0")
#: what the temporary repository copies: the workflow, the package (a dvc.yaml dep) and the settings
COPIED = (
    *("Snakefile", "workflow", "segbench", "config", "profiles"),
    *("environment.yml", "dvc.yaml", ".gitignore"),
)
BASE_LR = "base_lr: 0.01, lr_decay_at: [3]"  # the smoke Mask R-CNN schedule's lr in the registry


def env(data: Path | None = None) -> dict[str, str]:
    out = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    out.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    if data is not None:
        out["SEGBENCH_DATA"] = str(data)
    return out


def run(cmd: list[str], cwd: Path, data: Path | None = None, timeout: int = 600) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env(data), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)}: {(result.stdout + result.stderr)[-3000:]}"
    return result.stdout


def dvc(*args: str, cwd: Path, data: Path | None = None) -> str:
    if cwd != REPO_ROOT:  # a copy of its own
        return run([str(BIN / "dvc"), *args], cwd, data)
    with dvc_in_checkout():  # one DVC process at a time in the checkout (pytest -n)
        return run([str(BIN / "dvc"), *args], cwd, data)


def test_metrics_show_lines_are_short_on_the_committed_mini_results():
    out = dvc("metrics", "show", cwd=REPO_ROOT)
    lines = out.splitlines()
    assert any("results/mini/dvc/metrics/table2b/softmax.AP.json" in line for line in lines), out[:2000]
    assert max(map(len, lines)) < 200, max(lines, key=len)


def test_committed_mini_export_is_current(tmp_path):
    """``segbench dvc export --scale mini`` run again (tables and runs read in place) writes the same files."""
    mini = tmp_path / "mini"
    mini.mkdir()
    for name in ("tables", "runs"):
        (mini / name).symlink_to(REPO_ROOT / "results" / "mini" / name)
    export(tmp_path, "mini")
    fresh, committed = mini / "dvc", REPO_ROOT / "results" / "mini" / "dvc"
    files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file()), (
        "results/mini/dvc is out of date: run `segbench dvc export --scale mini`"
    )
    stale = [str(f) for f in files if not filecmp.cmp(fresh / f, committed / f, shallow=False)]
    assert not stale, f"out of date (run `segbench dvc export --scale mini`): {stale[:5]}"


def test_export_of_a_table_not_assembled_is_one_line(tmp_path, capsys):
    assert main(["dvc", "export", "--scale", "smoke", "--table", "table2b", "--results", str(tmp_path)]) != 0
    line = one_error_line(capsys)
    assert "table2b.json: table not assembled yet" in line and "reproduce_table2b" in line
    assert main(["dvc", "export", "--scale", "real_cpu", "--table", "table2b"]) != 0
    assert "not defined at scale 'real_cpu'" in one_error_line(capsys)


def test_weights_export_counts_untrained_runs(tmp_path, capsys):
    assert (
        main(
            [
                "dvc",
                "export",
                "--weights",
                "--scale",
                "smoke",
                "--table",
                "table2b",
                "--results",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == (
        "table2b: 0 weight files (2 runs have no model_final.pt here: train them or `dvc pull`)"
    )
    assert (tmp_path / "smoke" / "weights" / "table2b").is_dir()  # the stage's out exists, empty


def test_segbench_table_writes_the_export_of_the_table_it_assembles(tmp_path):
    """Snakemake's table rule keeps the DVC files current: `segbench table` on a copy of the mini table's
    runs writes the same metrics and plots files as the committed export."""
    mini = tmp_path / "mini"
    mini.mkdir()
    (mini / "runs").symlink_to(REPO_ROOT / "results" / "mini" / "runs")
    assert main(["table", "table2b", "--scale", "mini", "--results", str(tmp_path)]) == 0
    fresh, committed = mini / "dvc", REPO_ROOT / "results" / "mini" / "dvc"
    files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    assert files and all(str(f).split("/")[1] == "table2b" for f in files)
    assert all(filecmp.cmp(fresh / f, committed / f, shallow=False) for f in files)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC copy of the repository at the smoke scale: one tiny run trained and evaluated, the
    ``weights@<table>`` stage of dvc.yaml reproduced, all committed."""
    if shutil.which("git") is None:
        pytest.skip("git absent")
    root = tmp_path_factory.mktemp("dvc") / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source, target = REPO_ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    # the smoke scale by the one setting that names the default scale (dvc.yaml's vars read it)
    registry = root / "segbench" / "registry" / "experiments.yaml"
    text = registry.read_text()
    assert text.count("\ndefault_scale: mini\n") == 1
    registry.write_text(text.replace("\ndefault_scale: mini\n", "\ndefault_scale: smoke\n"))
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    shutil.copy2(REPO_ROOT / ".dvc" / "config", root / ".dvc" / "config")
    data = root.parent / "data"  # SEGBENCH_DATA: the smoke dataset, generated by the first command
    for action in ("train", "evaluate"):
        run(["segbench", action, *RUN_ARGS, "--results", str(root / "results")], root, data)
    dvc("repro", "--single-item", f"weights@{TABLE}", cwd=root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "baseline"], root)
    return root


def test_params_diff_names_an_edited_registry_key(repo):
    registry = repo / "segbench" / "registry" / "experiments.yaml"
    text = registry.read_text()
    assert text.count(BASE_LR) == 1
    registry.write_text(text.replace(BASE_LR, BASE_LR.replace("0.01", "0.02")))
    try:
        out = dvc("params", "diff", cwd=repo)
    finally:
        registry.write_text(text)
    line = next(
        line for line in out.splitlines() if "scales.smoke.families.maskrcnn.schedule.base_lr" in line
    )
    assert line.split()[-2:] == ["0.01", "0.02"]


def test_plots_show_writes_html_of_the_committed_mini_results(tmp_path):
    dvc("plots", "show", "-o", str(tmp_path / "plots"), cwd=REPO_ROOT)
    page = (tmp_path / "plots" / "index.html").read_text()
    for title in ("training loss per run", "validation AP during training (%)", "paper vs reproduced"):
        assert f"table2b: {title}" in page
    assert "r50_c4_softmax-seed2" in page  # the loss curves' data: one series per run


def test_weights_pushed_and_pulled_evaluate_bit_for_bit(repo, tmp_path):
    run_dir = repo / "results" / "smoke" / "runs" / RUN
    weights = repo / "results" / "smoke" / "weights" / TABLE / f"{RUN}.pt"
    assert filecmp.cmp(run_dir / "model_final.pt", weights, shallow=False)
    trained = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    dvc("remote", "add", "-d", "local", str(tmp_path / "remote"), cwd=repo)
    dvc("push", f"weights@{TABLE}", cwd=repo)
    # a fresh clone's state: no weights, no DVC cache, no model files in the run folder
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(weights.parent)
    for path in run_dir.glob("*.pt"):
        path.unlink()
    dvc("pull", f"weights@{TABLE}", cwd=repo)
    assert weights.is_file() and not (run_dir / "model_final.pt").exists()
    (run_dir / "metrics.json").unlink()
    run(["segbench", "evaluate", *RUN_ARGS, "--results", str(repo / "results")], repo, repo.parent / "data")
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"] == trained
