"""``segbench audit`` on the smoke scale: a fresh run audited against itself passes bit for bit; a tampered
metric or log fails and is named; a record without a machine signature falls back to the statistical rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from segbench.audit import audit, compare_logs, select_instances, statistical_check
from segbench.cli import main
from segbench.engine.runner import evaluate_run, train_run
from segbench.errors import InputError
from segbench.registry import resolve_run


def tiny_unet() -> dict[str, Any]:
    """unet_isbi at the smoke scale shrunk further (depth 2, 60-pixel tiles, 3 iterations): seconds."""
    cfg = resolve_run("unet_isbi", "smoke", 0)
    cfg["model"].update(depth=2, base_channels=2)
    cfg["input"]["tile"] = 60
    cfg["schedule"].update(iterations=3, checkpoint_every=3)
    return cfg


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(results root, data root) with freshly trained and evaluated smoke runs: the "committed" records."""
    base = tmp_path_factory.mktemp("audit")
    results, data = base / "results", base / "data"
    for cfg in (tiny_unet(), resolve_run("threshold_isbi", "smoke", 0)):
        run_dir = results / "smoke" / "runs" / cfg["run_id"]
        train_run(cfg, run_dir, data)
        evaluate_run(cfg, run_dir, data)
    return results, data


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def copy_records(results: Path, tmp_path: Path, run_id: str) -> Path:
    """A copy of one committed record set (no weights) to tamper with."""
    src, dst = results / "smoke" / "runs" / run_id, tmp_path / "results" / "smoke" / "runs" / run_id
    dst.mkdir(parents=True)
    for name in ("config.json", "train_done.json", "train_log.jsonl", "metrics.json"):
        if (src / name).exists():
            (dst / name).write_bytes((src / name).read_bytes())
    return tmp_path / "results"


def edit_json(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def test_a_fresh_run_audited_against_itself_passes_bit_for_bit(committed, tmp_path: Path) -> None:
    results, data = committed
    before = snapshot(results)
    summary = audit(
        "smoke",
        ["unet_isbi-seed0", "threshold_isbi-seed0"],
        data=data,
        results=results,
        work_dir=tmp_path / "work",
    )
    assert summary["passed"], [r["verdict"] for r in summary["runs"]]
    for report in summary["runs"]:
        assert report["mode"] == "bit-for-bit" and report["metric_differences"] == []
        assert "PASS bit-for-bit" in report["verdict"]
    unet = summary["runs"][0]
    assert unet["train_log"]["identical"] and unet["train_log"]["committed_lines"] == 4  # schedule + 3 steps
    assert snapshot(results) == before  # the committed records are never touched
    assert json.loads((tmp_path / "work" / "audit.json").read_text())["passed"] is True


def test_a_tampered_metric_fails_naming_the_metric(committed, tmp_path: Path, capsys) -> None:
    results, data = committed
    root = copy_records(results, tmp_path, "threshold_isbi-seed0")
    edit_json(
        root / "smoke/runs/threshold_isbi-seed0/metrics.json",
        lambda r: r["metrics"]["isbi"].update(rand_error=r["metrics"]["isbi"]["rand_error"] + 1e-12),
    )
    out = tmp_path / "report.json"
    code = main(
        [
            "audit",
            "--scale",
            "smoke",
            "--runs",
            "threshold_isbi-seed0",
            "--results",
            str(root),
            "--data-root",
            str(data),
            "--work-dir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert "FAIL bit-for-bit" in printed and "isbi.rand_error" in printed and "audit FAILED" in printed
    report = json.loads(out.read_text())["runs"][0]
    assert [d["metric"] for d in report["metric_differences"]] == ["isbi.rand_error"]
    assert report["metric_differences"][0]["abs_diff"] == pytest.approx(1e-12, rel=1e-3)


def test_other_machine_is_statistical_and_names_the_divergence_and_the_signature(
    committed, tmp_path: Path
) -> None:
    results, data = committed
    root = copy_records(results, tmp_path, "unet_isbi-seed0")
    run = root / "smoke/runs/unet_isbi-seed0"

    def other_machine(record: dict[str, Any]) -> None:
        record["provenance"]["machine_signature"]["cpu_capability"] = "AVX2"
        record["provenance"]["machine_signature_hash"] = "0123456789ab"

    edit_json(run / "train_done.json", other_machine)
    lines = run.joinpath("train_log.jsonl").read_text().splitlines()
    second = json.loads(lines[2])
    second["loss"] += 0.25
    lines[2] = json.dumps(second)
    run.joinpath("train_log.jsonl").write_text("\n".join(lines) + "\n")
    summary = audit("smoke", ["unet_isbi-seed0"], data=data, results=root, work_dir=tmp_path / "work")
    report = summary["runs"][0]
    assert report["mode"] == "statistical" and report["passed"]  # metrics equal: within the (one-seed) spread
    assert set(report["machine"]["differences"]) == {"cpu_capability"}
    first = report["train_log"]["first_divergence"]
    assert first["iteration"] == 2 and first["differences"]["loss"]["abs_diff"] == pytest.approx(0.25)
    assert "0123456789ab != " in report["verdict"] and "cpu_capability" in report["verdict"]
    assert "iteration 2" in report["verdict"] and "PASS statistical" in report["verdict"]


def test_a_record_without_signature_is_unknown_and_statistical(committed, tmp_path: Path) -> None:
    results, data = committed
    root = copy_records(results, tmp_path, "threshold_isbi-seed0")
    for name in ("config.json", "train_done.json"):
        edit_json(
            root / "smoke/runs/threshold_isbi-seed0" / name,
            lambda r: [r["provenance"].pop(k) for k in ("machine_signature", "machine_signature_hash")],
        )
    edit_json(
        root / "smoke/runs/threshold_isbi-seed0/metrics.json",
        lambda r: r["metrics"]["isbi"].update(pixel_error=r["metrics"]["isbi"]["pixel_error"] * 2 + 0.1),
    )
    summary = audit("smoke", ["threshold_isbi-seed0"], data=data, results=root, work_dir=tmp_path / "work")
    report = summary["runs"][0]
    assert report["machine"]["recorded_hash"] == "unknown" and report["mode"] == "statistical"
    assert not summary["passed"]
    bad = [c["metric"] for c in report["statistical"] if not c["ok"]]
    assert bad == ["isbi.pixel_error"]
    assert "signature unknown" in report["verdict"] and "isbi.pixel_error" in report["verdict"]


def test_statistical_rule_uses_the_seed_spread_widened_by_the_margin(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, value in enumerate((0.20, 0.30, 0.25)):
        (runs / f"threshold_phc-seed{seed}").mkdir(parents=True)
        (runs / f"threshold_phc-seed{seed}" / "metrics.json").write_text(
            json.dumps({"metrics": {"ctc": {"seg": value}}})
        )
    ok = statistical_check("threshold_phc", runs, {"ctc": {"seg": 0.34}}, relative=0.02)  # 0.30 + 0.05 margin
    bad = statistical_check("threshold_phc", runs, {"ctc": {"seg": 0.36}}, relative=0.02)
    assert (
        ok == [{**ok[0], "ok": True}]
        and ok[0]["committed_seeds"] == 3
        and ok[0]["margin"] == pytest.approx(0.05)
    )
    assert bad[0]["ok"] is False


def test_log_comparison_reports_length_differences(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"iteration": 1, "loss": 1.0, "time": 0.1}\n{"iteration": 2, "loss": 0.5, "time": 0.1}\n')
    b.write_text('{"iteration": 1, "loss": 1.0, "time": 0.3}\n')
    out = compare_logs(a, b)
    assert not out["identical"] and out["first_divergence"]["line"] == 2  # the step time is not compared


def test_selection(committed) -> None:
    results, _ = committed
    assert select_instances("smoke", ["unet_isbi"], results=results) == ["unet_isbi-seed0"]
    assert len(select_instances("smoke", sample=5, seed=3, results=results)) == 2
    with pytest.raises(InputError, match="no committed record"):
        select_instances("smoke", ["nope-seed0"], results=results)
