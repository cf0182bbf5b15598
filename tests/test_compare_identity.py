"""A method's identity is part of its runs (issue 34): editing a plugin retrains its runs and changes its
metrics, a rerun without an edit retrains nothing, and the Snakemake compare job depends on the code; the
comparison record says where each number came from; identical per-seed gaps are never 'p 0'; compare and
status work on the checkout the shell is in."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segbench.checkout import checkout_of, default_results, workflow_threads
from segbench.compare import comparison_markdown, method_comparisons
from segbench.errors import InputError
from segbench.paths import REPO_ROOT
from segbench.plugin_identity import comparison_stale, method_code, method_identity
from segbench.plugins import Plugin, method_run_config
from segbench.provenance import config_hash
from segbench.registry import evaluated_on, load_registry, resolve_run

BIN = Path(sys.executable).parent
PLUGIN = '''"""A U-Net loss for the identity test: the weighted cross entropy times a constant."""
import torch.nn.functional as F

SCALE = 1.0


def scaled_ce(logits, target, weights):
    return SCALE * (F.cross_entropy(logits, target, reduction="none") * weights).mean()


scaled_ce.segbench_kind = "unet_loss"
'''


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # compare picks its own threads
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


# ---------------------------------------------------------------------------------------------------------
# The identity itself (fast): distribution, version and source hash; registry runs untouched.
# ---------------------------------------------------------------------------------------------------------


def _fake_distribution(site: Path, version: str) -> None:
    """An installed distribution ``fakeplug`` (module ``fakeplug.loss``, entry point ``fake_ce``)."""
    pkg = site / "fakeplug"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    if not (pkg / "loss.py").exists():
        (pkg / "loss.py").write_text(PLUGIN)
    for old in site.glob("fakeplug-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"fakeplug-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakeplug\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[segbench.plugins]\nfake_ce = fakeplug.loss:scaled_ce\n")
    (info / "top_level.txt").write_text("fakeplug\n")
    (info / "RECORD").write_text(
        f"fakeplug/__init__.py,,\nfakeplug/loss.py,,\nfakeplug-{version}.dist-info/METADATA,,\n"
    )


def test_identity_of_an_installed_plugin_and_only_method_runs_carry_it(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _fake_distribution(site, "1.0")
    monkeypatch.syspath_prepend(str(site))
    by_entry_point = method_identity("fake_ce")
    by_module = method_identity("fakeplug.loss:scaled_ce")
    assert by_entry_point == by_module
    assert by_module["distribution"] == "fakeplug" and by_module["version"] == "1.0"
    assert by_module["source_files"] == ["fakeplug/__init__.py", "fakeplug/loss.py"]

    base = resolve_run("unet_isbi", "smoke", 0)
    registry_hash = config_hash(base)
    plugin = Plugin("fakeplug.loss:scaled_ce", "unet_loss", "scaled_ce", object())
    first = method_run_config(base, plugin)
    assert first["method"]["identity"] == by_module and config_hash(base) == registry_hash

    _fake_distribution(site, "1.1")  # a version bump alone
    assert method_identity("fake_ce")["version"] == "1.1"
    assert method_code("fake_ce").startswith("fakeplug==1.1, source ")
    bumped = method_run_config(base, Plugin(plugin.spec, plugin.kind, plugin.name, object()))
    assert config_hash(bumped) != config_hash(first)

    (site / "fakeplug" / "loss.py").write_text(PLUGIN.replace("SCALE = 1.0", "SCALE = 2.0"))  # the source
    edited = method_run_config(base, Plugin(plugin.spec, plugin.kind, plugin.name, object()))
    assert edited["method"]["identity"]["source_sha256"] != bumped["method"]["identity"]["source_sha256"]
    assert config_hash(edited) != config_hash(bumped)
    # the registry's own run never carries an identity: the committed results stay current
    assert "method" not in resolve_run("unet_isbi", "smoke", 0) and config_hash(base) == registry_hash


def test_identity_of_a_checkout_module_and_of_a_file(tmp_path):
    checkout = method_identity("examples.dice_loss:dice_weighted_ce")
    assert checkout["distribution"] is None and checkout["version"] is None
    assert "examples/dice_loss.py" in checkout["source_files"]  # the examples package, all of it
    single = tmp_path / "my_loss.py"
    single.write_text(PLUGIN)
    one = method_identity(f"{single}:scaled_ce")
    assert one["source_files"] == ["my_loss.py"] and one["distribution"] is None
    with pytest.raises(InputError, match="not found"):
        method_identity(f"{tmp_path / 'absent.py'}:scaled_ce")
    assert method_code("no_such_entry_point").startswith("unresolved (")


# ---------------------------------------------------------------------------------------------------------
# Statistics (fast): identical per-seed differences.
# ---------------------------------------------------------------------------------------------------------


def _row(row_id: str, per_seed: list[float]) -> dict:
    mean = sum(per_seed) / len(per_seed)
    return {"id": row_id, "label": row_id, "values": {"err": {"mean": mean, "per_seed": per_seed}}}


TABLE = {"columns": ["err"], "metrics": {"err": "isbi.pixel_error"}, "lower_is_better": True}


@pytest.mark.parametrize(
    ("baseline", "method"),
    [
        ([0.30, 0.20, 0.10], [0.25, 0.15, 0.05]),  # the same gap on every seed: floored, finite
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),  # no spread and no floor: untested
        ([0.30, 0.20], [0.25, 0.15]),  # two seeds: untested
    ],
)
def test_identical_seed_differences_never_give_p_zero(baseline, method):
    (c,) = method_comparisons(TABLE, [_row("base", baseline)], _row("method", method))
    if c["verdict"] == "untested":
        assert c["p_value"] is None and c["t"] is None
    else:
        assert math.isfinite(c["t"]) and 0 < c["p_value"] < 1 and c["sd_used"] > 0
        assert c["sd_observed"] == pytest.approx(0, abs=1e-12) and c["sd_used"] == c["std_floor"]
        assert c["interval"]["low"] < c["interval"]["high"]
    assert c["better_direction"] == "lower"


# ---------------------------------------------------------------------------------------------------------
# Which checkout: results root and threads (fast).
# ---------------------------------------------------------------------------------------------------------


def _fake_checkout(root: Path, threads: object = 1) -> Path:
    for marker in ("segbench/__init__.py", "segbench/registry/experiments.yaml", "workflow/Snakefile"):
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).write_text("")
    (root / "config").mkdir(exist_ok=True)
    (root / "config" / "config.yaml").write_text(f"train_threads: {threads}\n")
    return root


def test_results_root_and_threads_follow_the_checkout_the_shell_is_in(tmp_path, monkeypatch, capsys):
    clone = _fake_checkout(tmp_path / "clone", threads=2)
    (clone / "docs").mkdir()
    monkeypatch.chdir(clone / "docs")
    assert checkout_of() == clone.resolve()
    assert default_results(None, "compare") == clone.resolve() / "results"
    assert workflow_threads() == 2
    assert capsys.readouterr().err == ""  # nothing to say inside a checkout
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert default_results(None, "status") == REPO_ROOT / "results"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"results root {REPO_ROOT / 'results'}" in err
    assert default_results(str(tmp_path / "r"), "status") == (tmp_path / "r").resolve()
    _fake_checkout(clone, threads=0)
    with pytest.raises(InputError, match="train_threads 0 must be a positive integer"):
        workflow_threads(clone)
    # the repository's own workflow setting
    assert workflow_threads(REPO_ROOT) == 1


def test_status_reads_the_results_of_the_clone_it_runs_in(tmp_path):
    clone = _fake_checkout(tmp_path / "clone")
    result = subprocess.run(
        [str(BIN / "segbench"), "status", "table2b", "--scale", "smoke"],  # not -m: cwd not on sys.path
        cwd=clone,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"under {clone.resolve() / 'results' / 'smoke' / 'runs'}" in result.stdout.splitlines()[0]
    assert "results root" not in result.stderr


# ---------------------------------------------------------------------------------------------------------
# End to end (slow): compare, rerun, the Snakemake job's dependency, edit, rerun.
# ---------------------------------------------------------------------------------------------------------


def _compare(tmp_path: Path, spec: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "segbench", "compare", "--method", spec, "--table", "unet_table1"]
        + ["--seeds", "2", "--scale", "smoke", "--results", str(tmp_path / "results")]
        + ["--data-root", str(tmp_path / "data")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((tmp_path / "results/smoke/compare/unet_table1--scaled_ce.json").read_text())


def _trained(runs: Path) -> dict[str, tuple[int, str]]:
    """run id -> (train_done.json mtime, recorded config hash)."""
    return {
        d.name: (
            d.joinpath("train_done.json").stat().st_mtime_ns,
            json.loads(d.joinpath("train_done.json").read_text())["config_hash"],
        )
        for d in sorted(runs.iterdir())
        if d.joinpath("train_done.json").is_file()
    }


def _dry_run(tmp_path: Path, spec: str) -> str:
    """``snakemake -n`` of the comparison's JSON with ``config: methods`` naming ``spec`` (a fresh working
    directory: no .snakemake metadata)."""
    (tmp_path / "methods.yaml").write_text(
        json.dumps({"methods": [{"method": spec, "table": "unet_table1", "seeds": 2}]})
    )
    target = tmp_path / "results/smoke/compare/unet_table1--scaled_ce.json"
    command = [str(BIN / "snakemake"), str(target), "-s", str(REPO_ROOT / "Snakefile"), "-d", str(tmp_path)]
    command += ["-n", "--cores", "1", "--configfile", str(REPO_ROOT / "config/config.yaml")]
    command += [str(tmp_path / "methods.yaml"), "--config", "scale=smoke"]
    command += [f"results={tmp_path / 'results'}", f"data_root={tmp_path / 'data'}"]
    result = subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_editing_the_plugin_retrains_its_runs_and_changes_its_metrics(tmp_path):
    plugin = tmp_path / "scaled_ce.py"
    plugin.write_text(PLUGIN)
    spec = f"{plugin}:scaled_ce"
    runs = tmp_path / "results/smoke/runs"
    method_metrics = runs / "unet_isbi+scaled_ce-seed0/metrics.json"

    record = _compare(tmp_path, spec)
    first = _trained(runs)
    assert set(first) == {
        f"{r}-seed{s}"
        for r in ("unet_isbi", "swcnn_isbi", "threshold_isbi", "unet_isbi+scaled_ce")
        for s in (0, 1)
    }
    before = json.loads(method_metrics.read_text())
    identity = record["method"]["identity"]
    assert identity["source_files"] == ["scaled_ce.py"] and identity["distribution"] is None
    assert before["method"]["identity"] == identity  # in the run's config (hash) and records
    train_record = json.loads((runs / "unet_isbi+scaled_ce-seed0/train_done.json").read_text())
    assert train_record["provenance"]["method"]["identity"] == identity
    assert "1 threads" in train_record["provenance"]["device"]  # the workflow's train_threads

    # Labels and sources: the scale's evaluation, the paper's split named so, every run instance's record.
    registry = load_registry()
    assert record["evaluated_on"] == evaluated_on("unet_table1", "smoke", registry)
    assert record["paper_split"] == registry["tables"]["unet_table1"]["split"] and "split" not in record
    assert record["sample_words"]["many"] == "seeds" and record["cross_validation_folds"] is None
    assert set(record["runs"]) == set(first)
    for source in record["runs"].values():
        metrics = tmp_path / source["metrics_file"]
        assert metrics.is_file() and json.loads(metrics.read_text())["config_hash"] == source["config_hash"]
    text = comparison_markdown(record)
    assert "warping_error (isbi.warping_error): lower is better" in text
    assert f"Evaluated on: {record['evaluated_on']}" in text and "The paper's split:" in text

    # A rerun without an edit retrains nothing; the Snakemake job is up to date.
    _compare(tmp_path, spec)
    assert _trained(runs) == first
    assert not comparison_stale(tmp_path / "results/smoke/compare/unet_table1--scaled_ce.json", spec)
    assert "Nothing to be done" in _dry_run(tmp_path, spec)

    # Edit the plugin: the Snakemake job reruns (a fresh directory: no .snakemake metadata to rely on) ...
    plugin.write_text(PLUGIN.replace("SCALE = 1.0", "SCALE = 2.0"))
    assert "rule compare:" in _dry_run(tmp_path, spec)
    # ... and compare retrains the method's runs (and only those), whose metrics change.
    record = _compare(tmp_path, spec)
    second = _trained(runs)
    for run_id, (mtime, digest) in second.items():
        changed = (mtime, digest) != first[run_id]
        assert changed == ("+scaled_ce" in run_id), run_id
        if changed:
            assert digest != first[run_id][1]  # another config hash, not just a rewrite
    assert json.loads(method_metrics.read_text())["metrics"] != before["metrics"]
    assert record["method"]["identity"]["source_sha256"] != identity["source_sha256"]
    assert (runs / "unet_isbi+scaled_ce-seed0" / f"stale-{first['unet_isbi+scaled_ce-seed0'][1]}").is_dir()
