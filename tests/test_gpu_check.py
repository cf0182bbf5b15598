"""scripts/gpu_check.py: its --cpu mode writes the JSON and Markdown it promises; a step that raises,
crashes or hangs is recorded as failed and the other steps still run; the exit status says so."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def ctx(tmp_path: Path) -> dict:
    return {"mode": "cpu", "out": str(tmp_path), "scratch": str(tmp_path), "repo": str(REPO)}


def test_cpu_mode_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu", "--only", "roi_ops,mask_targets", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # the script finds its tree itself
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["mode"] == "cpu" and report["passed"] is True
    assert report["counts"] == {"ok": 3, "failed": 0, "skipped": 0}
    assert [s["name"] for s in report["steps"]] == ["environment", "roi_ops", "mask_targets"]
    for step in report["steps"]:
        assert step["status"] == "ok" and step["seconds"] > 0 and "error" not in step
        assert step["log"] == f"gpu_check_logs/{step['name']}.log"
        assert (out / step["log"]).is_file()
    assert report["device"]["type"] == "cpu" and report["device"]["torch"]
    assert "git_commit" in report and report["budget_s"] == 600
    roi = report["steps"][1]["numbers"]
    assert {(r["layer"], r["deterministic"]) for r in roi["rows"]} >= {
        ("torchvision roi_align (avg)", False),
        ("torchvision roi_align (avg)", True),
        ("roi_align max (ours)", True),
    }
    assert all(r["median_ms"] > 0 and "peak_mb" in r and r["repeatable_grad"] for r in roi["rows"])
    masks = report["steps"][2]["numbers"]
    assert [r["deterministic"] for r in masks["rows"]] == [False, True]
    assert masks["under_1_gib"] and all(r["max_abs_diff_vs_torchvision_kernel"] == 0 for r in masks["rows"])
    summary = (out / "gpu_check.md").read_text()
    assert "| roi_ops | ok |" in summary and "all 3 steps that ran passed" in summary


def test_a_failing_step_is_recorded_and_the_others_run(gpu_check: ModuleType, tmp_path: Path) -> None:
    ran = []

    def ok(ctx: dict, io: object) -> None:
        ran.append("ok")
        io.numbers["value"] = 1

    def boom(ctx: dict, io: object) -> None:
        io.numbers["partial"] = 2
        raise ValueError("injected\nfailure")

    def skip(ctx: dict, io: object) -> None:
        raise gpu_check.Skip("does not apply here")

    steps = [gpu_check.Step(name, name, 5, 5) for name in ("first", "second", "third", "fourth")]
    execute = gpu_check.in_process_executor({"first": ok, "second": boom, "third": ok, "fourth": skip})
    written: list[dict] = []
    report = gpu_check.run_checks(
        ctx(tmp_path), steps, execute, budget=60, write=lambda r: written.append(json.loads(json.dumps(r)))
    )
    assert [s["status"] for s in report["steps"]] == ["ok", "failed", "ok", "skipped"]
    assert ran == ["ok", "ok"]
    failed = report["steps"][1]
    assert failed["error"] == "ValueError: injected failure" and failed["numbers"] == {"partial": 2}
    assert report["steps"][3]["reason"] == "does not apply here"
    assert report["passed"] is False and report["counts"] == {"ok": 2, "failed": 1, "skipped": 1}
    assert [len(r["steps"]) for r in written] == [1, 2, 3, 4]  # the JSON is rewritten after every step


def test_exit_status_1_when_a_step_fails(gpu_check: ModuleType, tmp_path: Path, monkeypatch) -> None:
    def boom(ctx: dict, io: object) -> None:
        raise RuntimeError("the injected step failed")

    monkeypatch.setattr(gpu_check.steps_module, "mask_targets", boom)
    out = tmp_path / "out"
    assert gpu_check.main(["--cpu", "--in-process", "--only", "mask_targets", "--out", str(out)]) == 1
    report = json.loads((out / "gpu_check.json").read_text())
    assert [(s["name"], s["status"]) for s in report["steps"]] == [
        ("environment", "ok"),
        ("mask_targets", "failed"),
    ]
    assert report["steps"][1]["error"] == "the injected step failed"
    assert "| mask_targets | failed |" in (out / "gpu_check.md").read_text()


def test_isolated_steps_that_crash_or_hang(gpu_check: ModuleType, tmp_path: Path, monkeypatch) -> None:
    programs = {
        "crash": "print('about to die', flush=True); raise SystemExit(3)",
        # a partial result, then a hang: the numbers measured before the timeout are kept
        "hang": "import json, sys, time; open(sys.argv[1], 'w').write(json.dumps({'numbers': {'done': 1}})); "
        "time.sleep(60)",
    }
    monkeypatch.setattr(
        gpu_check,
        "child_command",
        lambda step, context, result: [sys.executable, "-c", programs[step.name], str(result)],
    )
    steps = [gpu_check.Step("crash", "crash", 30, 30), gpu_check.Step("hang", "hang", 2, 2)]
    execute = gpu_check.isolated_executor(tmp_path, tmp_path)
    report = gpu_check.run_checks(ctx(tmp_path), steps, execute, budget=60)
    crash, hang = report["steps"]
    assert crash["status"] == "failed"
    assert (
        crash["error"]
        == "the step's process ended with exit status 3 and no result; last log line: about to die"
    )
    assert crash["log_tail"] == ["about to die"]
    assert hang["status"] == "failed" and hang["error"] == "timed out after 2 s (killed)"
    assert hang["numbers"] == {"done": 1} and hang["seconds"] < 30


def test_bad_arguments_exit_2_with_one_line(gpu_check: ModuleType, tmp_path: Path, capsys) -> None:
    assert gpu_check.main(["--cpu", "--only", "roi_ops,nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown step(s) nope" in err[0] and "mask_targets" in err[0]
    (tmp_path / "file").write_text("")
    assert gpu_check.main(["--cpu", "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
