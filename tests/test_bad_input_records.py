"""Bad input, round three (issue #36, items 6 to 9): an edited run record, a metric that is not a finite
number, a registry that is not UTF-8 or defines a key twice or asks for absurd seed counts, ``--gpus 0`` and
``--results <a file>``. Each is one line naming the file (or value) and the fix, exit 2, no traceback,
nothing half-written."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from test_faults import one_error_line
from test_reporting_fixtures import SCALE, build_results

from segbench.cli import main
from segbench.errors import InputError, RunError
from segbench.io import write_json_atomic
from segbench.provenance import config_hash
from segbench.registry import MAX_SEEDS, registry_path, resolve_run, runs_for_tables
from segbench.yamlfile import load_yaml

REPO = Path(__file__).resolve().parents[1]


# -- item 6: status compares the recorded config, not only its hash ----------------------------------------
def _trained_records(results: Path, table: str = "unet_table1", scale: str = "smoke") -> list[Path]:
    """config.json, train_done.json and metrics.json of every run of ``table``, as segbench train records."""
    dirs = []
    for rs in runs_for_tables([table], scale):
        cfg = resolve_run(rs.run, scale, rs.seed)
        run_dir = results / scale / "runs" / rs.run_id
        digest = config_hash(cfg)
        write_json_atomic(run_dir / "config.json", {"config": cfg, "config_hash": digest})
        write_json_atomic(run_dir / "train_done.json", {"run_id": rs.run_id, "config_hash": digest})
        write_json_atomic(
            run_dir / "metrics.json", {"run_id": rs.run_id, "config_hash": digest, "metrics": {}}
        )
        dirs.append(run_dir)
    return dirs


def test_bad_input_status_sees_an_edited_config_json(tmp_path, capsys):
    results = tmp_path / "results"
    run_dir = next(d for d in _trained_records(results) if d.name == "unet_isbi-seed0")
    args = ["status", "unet_table1", "--scale", "smoke", "--results", str(results)]
    assert main(args) == 0
    assert "0 to train" in capsys.readouterr().out
    record = json.loads((run_dir / "config.json").read_text())
    record["config"]["schedule"]["lr"] = 0.5  # the hash recorded beside it is left as it was
    (run_dir / "config.json").write_text(json.dumps(record))
    assert main(args) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "unet_isbi-seed0" in line)
    assert "stale" in line and "schedule.lr: recorded 0.5, the registry gives 0.01" in line, out
    assert "1 to train" in out


def test_bad_input_train_retrains_a_run_whose_config_json_was_edited(tmp_path):
    """What status calls stale, `segbench train` retrains (without --force): the edited record and its
    files are set aside in stale-<hash>/, and the new record holds the registry's config."""
    from segbench.engine.runner import train_run

    cfg = resolve_run("threshold_isbi", "smoke", 0)
    run_dir = tmp_path / "results" / "smoke" / "runs" / cfg["run_id"]
    data = tmp_path / "data"
    train_run(cfg, run_dir, data)
    record = json.loads((run_dir / "config.json").read_text())
    record["config"]["input"]["edited"] = True  # the hash recorded beside it is left as it was
    (run_dir / "config.json").write_text(json.dumps(record))
    train_run(cfg, run_dir, data)
    assert (run_dir / f"stale-{config_hash(cfg)}" / "config.json").exists()
    assert json.loads((run_dir / "config.json").read_text())["config"] == cfg


def test_bad_input_status_sees_a_config_json_without_its_config(tmp_path, capsys):
    results = tmp_path / "results"
    run_dir = _trained_records(results)[0]
    (run_dir / "config.json").write_text(json.dumps({"config_hash": config_hash({})}))
    assert main(["status", "unet_table1", "--scale", "smoke", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert f"train {run_dir.name}: stale" in out and "records no config" in out


# -- item 7: a metric that is not a finite number --------------------------------------------------------
@pytest.mark.parametrize(
    "value", [math.nan, math.inf, "0.31", True, [0.3]], ids=["nan", "inf", "string", "bool", "list"]
)
def test_bad_input_table_refuses_a_metric_that_is_not_a_finite_number(tmp_path, capsys, value):
    results = tmp_path / "results"
    (table_json,) = build_results(results, ("table2b",))
    before = table_json.read_bytes()
    metrics = results / SCALE / "runs" / "r50_c4-seed1" / "metrics.json"
    record = json.loads(metrics.read_text())
    record["metrics"]["segm"]["AP"] = value
    metrics.write_text(json.dumps(record))  # a bare NaN / Infinity for the non-finite cases
    code = main(["table", "table2b", "--scale", SCALE, "--results", str(results)])
    line = one_error_line(capsys)
    assert code == 2 and "r50_c4-seed1" in line and "'segm.AP'" in line and "not a finite number" in line
    assert table_json.read_bytes() == before  # nothing half-written
    assert "NaN" not in table_json.read_text() and "Infinity" not in table_json.read_text()


@pytest.mark.parametrize("value", [math.nan, -math.inf])
def test_bad_input_json_is_never_written_with_nan(tmp_path, value):
    target = tmp_path / "record.json"
    with pytest.raises(RunError, match=r"rows\.1\.values\.AP is .*not a finite number") as err:
        write_json_atomic(target, {"rows": [{}, {"values": {"AP": value}}]})
    assert str(target) in str(err.value)
    assert list(tmp_path.iterdir()) == []


# every json.dump(s) in segbench writes through segbench.io.dumps (allow_nan=False), except hashing and IPC
JSON_DUMPS_ALLOWED = {
    "segbench/io.py",  # dumps itself
    "segbench/provenance.py",  # hashes of configs, never written as JSON
    "segbench/configdiff.py",  # a canonical form for comparing values
    "segbench/bench/timing.py",  # a message on a pipe between two processes
    "segbench/bench/__init__.py",  # a cell's text in a terminal or HTML table
    "segbench/bench/report.py",  # a settings string shown on the bench page
}


def test_bad_input_every_json_writer_refuses_nan():
    offenders = []
    for path in sorted((REPO / "segbench").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel in JSON_DUMPS_ALLOWED:
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bjson\.dumps?\(", line):
                offenders.append(f"{rel}:{no}")
    assert offenders == [], f"write JSON through segbench.io.dumps (allow_nan=False): {offenders}"


# -- item 8: registry loading ----------------------------------------------------------------------------
def _registry_text() -> str:
    return registry_path().read_text(encoding="utf-8")


def _use_registry(tmp_path, monkeypatch, data: bytes) -> Path:
    path = tmp_path / "experiments.yaml"
    path.write_bytes(data)
    monkeypatch.setenv("SEGBENCH_REGISTRY", str(path))
    return path


def test_bad_input_registry_with_a_byte_that_is_not_utf8(tmp_path, monkeypatch, capsys):
    text = _registry_text()
    data = text.encode("utf-8").replace(b"segbench", b"segb\xe9nch", 1)
    line_no = text[: text.index("segbench")].count("\n") + 1
    path = _use_registry(tmp_path, monkeypatch, data)
    assert main(["list"]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and f"line {line_no}" in line and "0xe9 is not UTF-8" in line


def _with_duplicate_run(text: str, run: str = "r50_c4") -> str:
    reg = yaml.safe_load(text)
    block = yaml.safe_dump({run: reg["runs"][run]}, sort_keys=False)
    indented = "".join(f"  {row}\n" for row in block.splitlines())
    head, sep, tail = text.partition("\nruns:\n")
    assert sep, "the registry has no top-level runs: mapping"
    return head + sep + indented + tail


def test_bad_input_registry_defining_a_run_twice(tmp_path, monkeypatch, capsys):
    path = _use_registry(tmp_path, monkeypatch, _with_duplicate_run(_registry_text()).encode())
    assert main(["list"]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and "'runs/r50_c4' is defined twice" in line, line


def test_bad_input_registry_with_a_duplicate_top_level_key(tmp_path, monkeypatch, capsys):
    path = _use_registry(tmp_path, monkeypatch, (_registry_text() + "\ndefault_scale: paper\n").encode())
    assert main(["list"]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and "'default_scale' is defined twice" in line, line


def test_bad_input_dataset_registry_defining_a_dataset_twice(tmp_path, monkeypatch, capsys):
    from segbench.data import registry as data_registry

    source = data_registry.DATASETS_YAML.read_text(encoding="utf-8")
    first = next(iter(yaml.safe_load(source)["datasets"]))
    path = tmp_path / "datasets.yaml"
    path.write_text(source + f"\n  {first}:\n    source: synthetic\n", encoding="utf-8")
    monkeypatch.setattr(data_registry, "DATASETS_YAML", path)
    assert main(["data", "list"]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and f"'datasets/{first}' is defined twice" in line, line


def test_bad_input_yaml_loader_rejects_duplicates_and_keeps_merges(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("base: &b {x: 1}\nitem:\n  <<: *b\n  y: 2\nlist: [{a: 1}, {a: 2}]\n")
    assert load_yaml(good, "test") == {
        "base": {"x": 1},
        "item": {"x": 1, "y": 2},
        "list": [{"a": 1}, {"a": 2}],
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("top:\n  list:\n    - {a: 1, a: 2}\n")
    with pytest.raises(InputError, match=r"line 3: test key 'top/list/0/a' is defined twice"):
        load_yaml(bad, "test")


@pytest.mark.parametrize("where", ["table", "derived_scale"])
def test_bad_input_registry_with_an_absurd_seed_count(tmp_path, monkeypatch, capsys, where):
    reg = yaml.safe_load(_registry_text())
    if where == "table":
        reg["tables"]["table2b"]["seeds"]["smoke"] = 200_000
        key = "tables/table2b/seeds/smoke"
    else:
        derived = next(name for name, scale in reg["scales"].items() if "base" in scale)
        reg["scales"][derived]["seeds"] = 200_000
        key = f"scales/{derived}/seeds"
    path = _use_registry(tmp_path, monkeypatch, yaml.safe_dump(reg, sort_keys=False).encode())
    assert main(["status", "table2b", "--scale", "smoke", "--results", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and key in line and f"at most {MAX_SEEDS}" in line, line


def test_bad_input_registry_seed_limit_keeps_the_committed_counts():
    reg = yaml.safe_load(_registry_text())
    assert max(c for t in reg["tables"].values() for c in t["seeds"].values()) <= MAX_SEEDS == 1000


# -- item 9: --gpus and --results ------------------------------------------------------------------------
@pytest.mark.parametrize("gpus", ["0", "-1"])
def test_bad_input_plan_needs_at_least_one_gpu(gpus, capsys):
    assert main(["plan", "table2b", "--scale", "paper", "--gpus", gpus]) == 2
    line = one_error_line(capsys)
    assert f"--gpus {gpus}" in line and "at least 1 GPU" in line


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_bad_input_negative_gpus_for_a_run(command, tmp_path, capsys):
    args = [command, "--run", "unet_isbi", "--scale", "smoke", "--results", str(tmp_path), "--gpus", "-1"]
    assert main(args) == 2
    assert "--gpus -1" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["status", "table2b", "--scale", "smoke"],
        ["table", "table2b", "--scale", "smoke"],
        ["report", "--scale", "smoke", "--no-figures"],
        ["list", "--runs", "--scale", "smoke"],
        ["train", "--run", "unet_isbi", "--scale", "smoke", "--device", "cpu"],
    ],
    ids=lambda c: c[0],
)
def test_bad_input_results_that_is_a_file(command, tmp_path, capsys):
    results = tmp_path / "results.txt"
    results.write_text("not a folder\n")
    extra = ["--out", str(tmp_path / "reports")] if command[0] == "report" else []
    assert main([*command, "--results", str(results), *extra]) == 2
    line = one_error_line(capsys)
    assert f"--results {results}" in line and "is a file, not a folder" in line
    assert results.read_text() == "not a folder\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "results.txt"
    ]


def test_bad_input_status_of_results_that_do_not_exist(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["status", "table2b", "--scale", "smoke", "--results", str(missing)]) == 2
    assert "does not exist" in one_error_line(capsys) and not missing.exists()
