"""The run lock: one writer per run directory (segbench.engine.runlock).

A second ``segbench train`` / ``evaluate`` of the same run, seed and results folder stops at once with one
line naming the run and the holder's pid (exit 1) and writes nothing; the kernel releases the lock when
the holder dies, ``kill -9`` included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segbench.cli import main
from segbench.engine.runlock import lock_path, run_lock
from segbench.engine.runner import set_aside_stale
from segbench.errors import RunError

REPO = Path(__file__).resolve().parents[1]
RUN = "r50_c4"

HOLDER = """
import sys, time
from pathlib import Path
from segbench.engine.runlock import run_lock
with run_lock(Path(sys.argv[1]), "train"):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(run_dir: Path) -> subprocess.Popen:
    """A separate process holding the run's lock (as a running ``segbench train`` would)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def holder(tmp_path):
    run_dir = tmp_path / "results" / "smoke" / "runs" / f"{RUN}-seed0"
    proc = _hold(run_dir)
    yield run_dir, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _argv(command: str, tmp_path: Path) -> list[str]:
    return [
        command,
        "--run",
        RUN,
        "--scale",
        "smoke",
        "--results",
        str(tmp_path / "results"),
        "--data-root",
        str(tmp_path / "data"),
        "--device",
        "cpu",
    ]


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_lock_second_writer_stops_with_one_line(command, holder, tmp_path, capsys):
    run_dir, proc = holder
    if command == "evaluate":  # evaluate needs a trained run to reach its write
        run_dir.mkdir(parents=True)
        from segbench.io import write_json_atomic
        from segbench.provenance import config_hash
        from segbench.registry import resolve_run

        write_json_atomic(
            run_dir / "train_done.json", {"config_hash": config_hash(resolve_run(RUN, "smoke", 0))}
        )
    before = sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else None
    code = main(_argv(command, tmp_path))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("segbench: error: ")]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert f"{RUN}-seed0" in lines[0] and f"pid {proc.pid}" in lines[0], lines[0]
    after = sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else None
    assert after == before  # no config.json, no log, no metrics.json


def test_lock_is_released_when_the_holder_is_killed(holder):
    run_dir, proc = holder
    with pytest.raises(RunError, match=f"pid {proc.pid}"):
        with run_lock(run_dir):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with run_lock(run_dir) as path:  # the kernel dropped the flock with the process
        assert path == lock_path(run_dir)
        assert path.read_text().split()[0] == str(os.getpid())


def test_lock_second_writer_as_a_separate_segbench_process(holder, tmp_path):
    run_dir, proc = holder
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "segbench", *_argv("train", tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("segbench: error: ") == 1 and f"pid {proc.pid}" in result.stderr
    assert time.monotonic() - start < 60  # it does not wait for the holder
    assert not (run_dir / "config.json").exists() and not (run_dir / "train_log.jsonl").exists()


def test_lock_file_sits_beside_the_run_and_survives_set_aside(tmp_path):
    run_dir = tmp_path / "runs" / "r-seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text('{"config_hash": "old"}')
    with run_lock(run_dir) as path:
        assert path.parent == run_dir.parent and path.name == ".r-seed0.lock"
        set_aside_stale(run_dir, "new")
        assert path.exists() and (run_dir / "stale-old" / "config.json").exists()


def test_lock_one_process_after_another_both_succeed(tmp_path):
    run_dir = tmp_path / "runs" / "r-seed0"
    for _ in range(2):
        with run_lock(run_dir):
            pass
