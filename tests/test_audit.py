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
from segbench.provenance import config_hash
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


def write_seeds(runs: Path, run: str, values: dict[int, dict[str, float]]) -> None:
    for seed, metrics in values.items():
        folder = runs / f"{run}-seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps({"metrics": {"ctc": metrics}}))


def test_statistical_rule_is_3_sd_of_a_difference_of_two_draws(tmp_path: Path) -> None:
    """|rerun - committed| <= 3 * sqrt(2) * sd, sd the std of the run's committed seeds (floored as in the
    tables); the registry's headline metrics only (threshold_phc: ctc.seg, ctc.iou)."""
    runs = tmp_path / "runs"
    seeds = {0: {"seg": 0.20, "iou": 0.5}, 1: {"seg": 0.30, "iou": 0.5}, 2: {"seg": 0.25, "iou": 0.5}}
    write_seeds(runs, "threshold_phc", seeds)
    ok = statistical_check("threshold_phc", 0, runs, {"ctc": {"seg": 0.32, "iou": 0.5, "other": 9.0}})
    assert [c["metric"] for c in ok] == ["ctc.seg", "ctc.iou"]  # "other": reported elsewhere, not judged
    seg = ok[0]
    assert seg["committed"] == 0.20 and seg["sd_used"] == pytest.approx(0.05)
    assert seg["z"] == pytest.approx(0.12 / (2**0.5 * 0.05)) and seg["ok"]
    # identical seeds (iou): the tables' floor (1 % of |mean|) keeps a tiny difference from failing
    assert ok[1]["sd_floored"] and ok[1]["ok"]
    # a deviant rerun does not widen its tolerance: the spread is the committed seeds' alone
    bad = statistical_check("threshold_phc", 0, runs, {"ctc": {"seg": 0.45, "iou": 0.5}})
    assert bad[0]["sd_used"] == pytest.approx(0.05) and bad[0]["ok"] is False and bad[0]["z"] > 3


def test_an_edited_record_fails_integrity_naming_the_metric(tmp_path: Path) -> None:
    """A committed value moved by 5 sd is caught by the sha256 the table recorded for the record, and named
    with the table's value beside it (statistics alone could not: the edit widens the seed spread)."""
    from segbench.audit import record_integrity
    from segbench.io import sha256_file

    root = tmp_path / "results"
    runs = root / "mini" / "runs"
    values = {0: 0.25, 1: 0.20, 2: 0.30}
    write_seeds(runs, "threshold_phc", {k: {"seg": v, "iou": 0.5} for k, v in values.items()})
    table = {
        "table": "unet_table2",
        "metrics": {"PhC-U373 SEG": "ctc.seg", "PhC-U373 IoU": "ctc.iou"},
        "rows": [
            {
                "runs": ["threshold_phc"],
                "values": {
                    "PhC-U373 SEG": {"per_seed": list(values.values())},
                    "PhC-U373 IoU": {"per_seed": [0.5] * 3},
                },
            }
        ],
        "runs": {
            f"threshold_phc-seed{k}": {
                "metrics_sha256": sha256_file(runs / f"threshold_phc-seed{k}/metrics.json")
            }
            for k in values
        },
    }
    (root / "mini" / "tables").mkdir()
    (root / "mini" / "tables" / "unet_table2.json").write_text(json.dumps(table))
    assert record_integrity(root, "mini", "threshold_phc-seed0") == []
    write_seeds(runs, "threshold_phc", {0: {"seg": 0.25 + 5 * 0.05, "iou": 0.5}})
    assert record_integrity(root, "mini", "threshold_phc-seed0") == [
        {"table": "unet_table2", "metric": "ctc.seg", "table_value": 0.25, "record_value": 0.5}
    ]
    assert record_integrity(root, "mini", "threshold_phc-seed1") == []
    # the audit fails such a record at once, naming the metric, without spending a rerun on it
    cfg = resolve_run("threshold_phc", "smoke", 0)
    (runs / "threshold_phc-seed0" / "config.json").write_text(
        json.dumps({"config": cfg, "config_hash": config_hash(cfg)})
    )
    summary = audit(
        "mini", ["threshold_phc-seed0"], data=tmp_path / "data", results=root, work_dir=tmp_path / "w"
    )
    report = summary["runs"][0]
    assert not summary["passed"] and report["mode"] == "record integrity"
    assert "record edited: ctc.seg is 0.5 in metrics.json, 0.25 in unet_table2" in report["verdict"]
    assert not (tmp_path / "w" / "mini" / "runs").exists()  # nothing was retrained


def test_the_verdict_shows_headline_metrics_and_what_varied_not_raw_arrays(committed, tmp_path: Path) -> None:
    results, data = committed
    root = copy_records(results, tmp_path, "unet_isbi-seed0")

    def other_cpu(record: dict[str, Any]) -> None:
        record["provenance"]["machine_signature"]["cpu"] = "Another CPU"
        record["provenance"]["machine_signature_hash"] = "0123456789ab"

    edit_json(root / "smoke/runs/unet_isbi-seed0/train_done.json", other_cpu)
    edit_json(
        root / "smoke/runs/unet_isbi-seed0/metrics.json",
        lambda r: r["metrics"]["isbi"].update(extra_counts=list(range(5000))),
    )
    lines: list[str] = []
    summary = audit(
        "smoke", ["unet_isbi-seed0"], data=data, results=root, work_dir=tmp_path / "w", echo=lines.append
    )
    text = "\n".join(lines)
    assert lines[0].startswith("audit of 1 run(s) at scale smoke: the committed trainings took")
    assert any(line.startswith("[1/1] unet_isbi-seed0: its committed training took ") for line in lines)
    assert any("training (3 iterations)" in line for line in lines)
    assert any("evaluating" in line for line in lines)
    verdict = summary["runs"][0]["verdict"]
    assert "varied: machine differs (cpu); same data; same threads" in verdict
    for key in ("isbi.warping_error", "isbi.rand_error", "isbi.pixel_error"):
        assert f"  {key}: rerun " in verdict
    assert max(len(line) for line in text.splitlines()) < 200 and "4999" not in text


def test_security_the_audit_never_writes_its_report_into_the_results(
    committed, tmp_path: Path, capsys
) -> None:
    results, data = committed
    target = results / "smoke" / "runs" / "threshold_isbi-seed0" / "metrics.json"
    before = target.read_bytes()
    code = main(
        [
            "audit",
            "--scale",
            "smoke",
            "--runs",
            "threshold_isbi-seed0",
            "--results",
            str(results),
            "--data-root",
            str(data),
            "--out",
            str(target),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and "inside the committed results" in err
    assert len(err.strip().splitlines()) == 1 and target.read_bytes() == before


def test_fault_a_same_machine_audit_of_a_tampered_metric_fails_bit_for_bit(committed, tmp_path: Path) -> None:
    """The signature is taken the same way at training and at audit (build configuration, not the
    libraries loaded at that moment), so on the training machine a 1 % edit is caught bit for bit."""
    from segbench.provenance import machine_signature

    results, data = committed
    root = copy_records(results, tmp_path, "threshold_isbi-seed0")
    import scipy.ndimage  # noqa: F401 - loads scipy's BLAS: the signature must not change

    recorded = json.loads((root / "smoke/runs/threshold_isbi-seed0/train_done.json").read_text())
    assert recorded["provenance"]["machine_signature"] == machine_signature()
    edit_json(
        root / "smoke/runs/threshold_isbi-seed0/metrics.json",
        lambda r: r["metrics"]["isbi"].update(pixel_error=r["metrics"]["isbi"]["pixel_error"] * 1.01),
    )
    summary = audit("smoke", ["threshold_isbi-seed0"], data=data, results=root, work_dir=tmp_path / "w")
    report = summary["runs"][0]
    assert report["mode"] == "bit-for-bit" and not report["passed"]
    assert "isbi.pixel_error" in report["verdict"]


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
