"""`segbench status` and the consistency of tables that share runs (issue: fresh-clone commands)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from segbench.data import prepare
from segbench.engine.runner import evaluate_run, train_run
from segbench.provenance import config_hash
from segbench.registry import load_registry, resolve_run, row_runs
from segbench.status import CURRENT, MISSING, STALE, assembled_with, run_state, table_state, target_status
from segbench.tables import write_table

SEGBENCH = [sys.executable, "-m", "segbench"]


def test_assembled_with_adds_exactly_the_tables_whose_runs_the_artifact_trains():
    reg = load_registry()

    def runs(tables):
        return {r for t in tables for row in reg["tables"][t]["rows"] for r in row_runs(row)}

    for artifact in ("table2", "table2a", "table5", "unet_table1", "class_agnostic"):
        tables = assembled_with(artifact, reg)
        trained = runs(tables)
        others = [t for t in reg["tables"] if t not in tables]
        assert not any(runs([t]) and runs([t]) <= trained for t in others), artifact
    assert "table1" in assembled_with("table2")  # Table 1 shows 2a's deeper backbones
    assert "class_agnostic" not in assembled_with("table2")  # it needs a run Table 2 does not train


def test_run_state_and_table_staleness_follow_the_records(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    prepare("em_smoke", data)
    cfg = resolve_run("threshold_isbi", "smoke", 0)
    run_dir = results / "smoke" / "runs" / cfg["run_id"]
    assert run_state(cfg, run_dir).state == MISSING
    train_run(cfg, run_dir, data)
    evaluate_run(cfg, run_dir, data)
    assert run_state(cfg, run_dir).state == CURRENT
    changed = {**cfg, "model": {**cfg["model"], "sigma_px": 3.0}}
    assert run_state(changed, run_dir).state == STALE

    # a table built on that run is current until the run's metrics change
    table = next(
        t
        for t, spec in load_registry()["tables"].items()
        if any("threshold_isbi" in row_runs(r) for r in spec["rows"])
    )
    metrics = run_dir / "metrics.json"
    record = json.loads(metrics.read_text())
    run_ids = [
        f"{r}-seed0" for r in {r for row in load_registry()["tables"][table]["rows"] for r in row_runs(row)}
    ]
    for rid in run_ids:  # the table's other runs: copies of this one's record are enough for assembly
        other = results / "smoke" / "runs" / rid
        if other != run_dir:
            other.mkdir(parents=True, exist_ok=True)
            run, seed = rid.rsplit("-seed", 1)
            rec = {
                **record,
                "run_id": rid,
                "run": run,
                "config_hash": config_hash(resolve_run(run, "smoke", int(seed))),
            }
            (other / "metrics.json").write_text(json.dumps(rec))
    write_table(table, "smoke", results)
    assert table_state(table, "smoke", results) == "current"
    metrics.write_text(metrics.read_text().replace('"seed": 0', '"seed": 0 '))
    state = table_state(table, "smoke", results)
    assert state.startswith("stale:") and cfg["run_id"] in state
    assert table_state("table3", "smoke", results) == "missing"


def test_status_command_names_what_will_train_and_the_force(tmp_path):
    out = subprocess.run(
        [*SEGBENCH, "status", "reproduce_table2b", "--scale", "smoke", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "2 to train" in out.stdout and "r50_c4-seed0: missing" in out.stdout and "FORCE=1" in out.stdout
    status = target_status("table2b", "smoke", tmp_path)
    assert [r.state for r in status.runs] == [MISSING, MISSING]
    bad = subprocess.run([*SEGBENCH, "status", "reproduce_bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "bogus" in bad.stderr


def test_retrain_switch_starts_from_scratch_with_a_fresh_log(tmp_path):
    """What `make reproduce FORCE=1` does to each run: SEGBENCH_RETRAIN=1 reaches `segbench train`."""
    data, results = tmp_path / "data", tmp_path / "results"
    prepare("shapes_smoke", data)
    args = [
        *SEGBENCH,
        "train",
        "--run",
        "r50_c4",
        "--scale",
        "smoke",
        "--results",
        str(results),
        "--data-root",
        str(data),
    ]
    env = {"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent)}
    assert subprocess.run(args, capture_output=True, text=True, env=env).returncode == 0
    run_dir = results / "smoke" / "runs" / "r50_c4-seed0"
    (run_dir / "train_done.json").unlink()  # what Snakemake's --forcerun does before the job
    resumed = subprocess.run(args, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0 and not list(run_dir.glob("stale-*"))
    retrained = subprocess.run(args, capture_output=True, text=True, env={**env, "SEGBENCH_RETRAIN": "1"})
    assert retrained.returncode == 0, retrained.stderr
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert sum(1 for rec in log if rec.get("event") == "schedule") == 1  # a fresh log, not appended to
    assert list(run_dir.glob("stale-*/train_log.jsonl"))


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_committed_results_get_dates_in_dag_order_and_changed_ones_keep_theirs(tmp_path):
    from segbench.workflow_env import settle_committed_mtimes

    repo = tmp_path / "repo"
    files = {
        "results/mini/runs/a-seed0/config.json": 0,
        "results/mini/runs/a-seed0/train_done.json": 1,
        "results/mini/runs/a-seed0/metrics.json": 2,
        "results/mini/tables/t.json": 3,
        "reports/mini/figures/f.json": 4,
        "reports/mini/t.html": 5,
        "results/mini/runs/b-seed0/metrics.json": 2,
    }
    for i, rel in enumerate(reversed(list(files))):  # checked out in the wrong order: pages oldest
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "results")
    changed = repo / "results/mini/runs/b-seed0/metrics.json"
    changed.write_text("retrained")  # a result produced after the checkout keeps its (new) date
    os.utime(changed, (2_000_000, 2_000_000))

    assert settle_committed_mtimes(repo) == len(files) - 1
    dates = {rel: (repo / rel).stat().st_mtime_ns for rel in files}
    ordered = sorted((lv, dates[rel]) for rel, lv in files.items() if rel != str(changed.relative_to(repo)))
    assert [d for _, d in ordered] == sorted(d for _, d in ordered) and len(set(ordered)) == len(ordered)
    assert dates["results/mini/runs/b-seed0/metrics.json"] == 2_000_000 * 10**9
    assert settle_committed_mtimes(repo) == len(files) - 1 and dates == {
        rel: (repo / rel).stat().st_mtime_ns for rel in files
    }  # a second call changes nothing
    assert settle_committed_mtimes(tmp_path / "not-a-repo") == 0


def test_a_fresh_clone_has_nothing_to_redo(tmp_path):
    """The README's promise: `make reproduce` on a fresh clone trains nothing (the committed mini results
    are current) and, with no weights and no data, does not try to re-evaluate anything either."""
    from segbench.paths import REPO_ROOT

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--local", str(REPO_ROOT), str(clone)], check=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(clone),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    out = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "reproduce_all", "--config", "scale=mini"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Nothing to be done" in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
    assert not (clone / "data").exists()


def _dry_run_in_edited_clone(tmp_path: Path, old: str, new: str, target: str) -> str:
    """``snakemake -n TARGET`` at mini in a fresh clone whose registry has ``old`` replaced by ``new``."""
    from segbench.paths import REPO_ROOT

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--local", str(REPO_ROOT), str(clone)], check=True)
    registry = clone / "segbench/registry/experiments.yaml"
    text = registry.read_text()
    assert old in text
    registry.write_text(text.replace(old, new, 1))
    env = {
        **os.environ,
        "PYTHONPATH": str(clone),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    snakemake = str(Path(sys.executable).parent / "snakemake")
    out = subprocess.run(
        [snakemake, "-n", target, "--config", "scale=mini"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-2000:]
    return log


def _trained(log: str) -> list[tuple[str, str]]:
    return sorted(re.findall(r"segbench train --run (\S+) --scale mini --seed (\d+)", log))


def test_a_registry_edit_in_a_fresh_clone_retrains_exactly_the_runs_it_changes(tmp_path):
    """Snakemake's params trigger needs its .snakemake metadata, which a clone lacks: the train rule's
    stale_training input (a sentinel named by the new config hash) makes the edited run retrain anyway,
    and only that run."""
    log = _dry_run_in_edited_clone(tmp_path, "budget: 0.25", "budget: 0.3", "reproduce_unet_budget")
    assert _trained(log) == [("unet_isbi_quarter", "0")], log[-3000:]
    assert "results/mini/retrain/unet_isbi_quarter-seed0." in log


def test_a_seed_added_in_a_fresh_clone_is_trained_and_its_table_reassembled(tmp_path):
    """The table rule's stale_table input: a table whose recorded runs differ from the registry's is
    re-assembled, which builds the new run instances (a missing input alone would not)."""
    rows = "\n    rows:\n      - {id: imcb"
    log = _dry_run_in_edited_clone(
        tmp_path,
        "seeds: {smoke: 1, mini: 3, paper: 1}" + rows,
        "seeds: {smoke: 1, mini: 4, paper: 1}" + rows,
        "reproduce_unet_table2",
    )
    expected = [("threshold_hela", "3"), ("threshold_phc", "3"), ("unet_hela", "3"), ("unet_phc", "3")]
    assert _trained(log) == expected, log[-3000:]
    assert "results/mini/retrain/table-unet_table2." in log


def test_a_job_generates_its_missing_synthetic_dataset_and_leaves_placed_data_alone(tmp_path):
    """Synthetic datasets are no DAG input (so a clone without data/ reruns nothing): the first job that
    needs one generates it; a directory someone placed there is used as it is."""
    data, results = tmp_path / "data", tmp_path / "results"
    cfg = resolve_run("threshold_isbi", "smoke", 0)
    train_run(cfg, results / "smoke" / "runs" / cfg["run_id"], data)
    assert (data / cfg["dataset"]["name"] / "MANIFEST.json").is_file()

    placed = tmp_path / "placed"
    (placed / cfg["dataset"]["name"]).mkdir(parents=True)
    marker = placed / cfg["dataset"]["name"] / "mine.txt"
    marker.write_text("user data")
    from segbench.engine.runner import dataset_of

    assert dataset_of(cfg, placed) is None and marker.read_text() == "user data"
    assert not (placed / cfg["dataset"]["name"] / "MANIFEST.json").exists()
