"""``kill -9`` during training loses nothing: a rerun resumes from the newest checkpoint and ends with the
same final weights and metrics, bit for bit, as an uninterrupted run with the same seed (CPU, one thread).

The kill points come from a seeded RNG; a run is killed once its log shows that many iterations (so kills
land anywhere: mid-iteration, mid-checkpoint, between checkpoints). A temporary registry lengthens the
smoke schedules so that there is room to kill.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from segbench import data
from segbench.io import read_json, read_jsonl
from segbench.registry import registry_path

pytestmark = pytest.mark.slow

SEGBENCH = str(Path(sys.executable).with_name("segbench"))
SCALE = "smoke"
KILL_SEED = 20170320  # Mask R-CNN's arXiv date; any fixed seed gives reproducible kill points
SCHEDULES = {  # (family, iterations, checkpoint_every, kill points drawn from)
    "r50_c4": ("maskrcnn", 12, 2, range(1, 10)),
    "unet_isbi": ("unet", 60, 10, range(12, 45)),  # past the first checkpoint
}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("interrupt")
    reg = yaml.safe_load(registry_path().read_text(encoding="utf-8"))
    for family, iterations, every, _ in SCHEDULES.values():
        schedule = reg["scales"][SCALE]["families"][family]["schedule"]
        schedule.update(iterations=iterations, checkpoint_every=every)
        if family == "maskrcnn":
            schedule["lr_decay_at"] = [iterations - 2]
    registry = root / "experiments.yaml"
    registry.write_text(yaml.safe_dump(reg, sort_keys=False), encoding="utf-8")
    data_root = root / "data"
    for name in ("shapes_smoke", "em_smoke"):
        data.prepare(name, data_root)
    environ = {
        **os.environ,
        "SEGBENCH_REGISTRY": str(registry),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    return {"root": root, "data": data_root, "environ": environ}


def _argv(command: str, run: str, results: Path, env: dict) -> list[str]:
    return [
        SEGBENCH,
        command,
        "--run",
        run,
        "--scale",
        SCALE,
        "--results",
        str(results),
        "--data-root",
        str(env["data"]),
        "--device",
        "cpu",
    ]


def _segbench(command: str, run: str, results: Path, env: dict) -> None:
    result = subprocess.run(
        _argv(command, run, results, env), env=env["environ"], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _train_and_kill(run: str, results: Path, env: dict, at_iteration: int) -> None:
    """Start ``segbench train`` and SIGKILL it once its log (rewritten by this process) reaches
    ``at_iteration``."""
    log = results / SCALE / "runs" / f"{run}-seed0" / "train_log.jsonl"
    stale = _inode(log)  # a resuming run rewrites the log (new inode) before it logs new iterations
    proc = subprocess.Popen(
        _argv("train", run, results, env),
        env=env["environ"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while True:
            assert proc.poll() is None, (
                f"{run} ended before iteration {at_iteration}: {proc.stderr.read()[-2000:]}"
            )
            assert time.monotonic() < deadline, f"{run} never reached iteration {at_iteration}"
            if _inode(log) not in (None, stale):
                done = max((r.get("iteration", 0) for r in read_jsonl(log)), default=0)
                if done >= at_iteration:
                    break
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model_final.pt", map_location="cpu", weights_only=True)["model"]


@pytest.mark.parametrize("run", list(SCHEDULES))
def test_kill_9_then_rerun_equals_an_uninterrupted_run(run, env, tmp_path):
    family, iterations, every, kill_range = SCHEDULES[run]
    kills = sorted(random.Random(f"{KILL_SEED}-{run}").sample(kill_range, 3 if family == "maskrcnn" else 1))

    reference = tmp_path / "reference"
    interrupted = tmp_path / "interrupted"
    if family == "maskrcnn":  # both find the pretrained backbone cached, as DAG runs do (rule pretrain)
        for results in (reference, interrupted):
            subprocess.run(
                [SEGBENCH, "pretrain", "--scale", SCALE, "--results", str(results)],
                env=env["environ"],
                check=True,
                capture_output=True,
                timeout=300,
            )
    _segbench("train", run, reference, env)
    _segbench("evaluate", run, reference, env)

    out = interrupted / SCALE / "runs" / f"{run}-seed0"
    for k in kills:
        _train_and_kill(run, interrupted, env, k)
        assert not (out / "train_done.json").exists(), f"train_done.json after kill -9 at iteration {k}"
        assert not (out / "model_final.pt").exists()
        for checkpoint in out.glob("checkpoint_*.pt"):  # atomic: every visible checkpoint is whole
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            assert state["iteration"] % every == 0 and state["iteration"] <= iterations
    newest = max((int(p.stem.split("_")[1]) for p in out.glob("checkpoint_*.pt")), default=0)
    assert newest > 0, "no checkpoint survived the kills: the rerun would not exercise resume"

    _segbench("train", run, interrupted, env)  # the rerun resumes
    _segbench("evaluate", run, interrupted, env)

    ref_out = reference / SCALE / "runs" / f"{run}-seed0"
    summary = read_json(out / "train_done.json")["summary"]
    assert (summary["resumed_from"] or 0) == newest
    logged = [r["iteration"] for r in read_jsonl(out / "train_log.jsonl") if "iteration" in r]
    assert logged == list(range(1, iterations + 1))  # each iteration logged once across the kills

    ref_weights, weights = _weights(ref_out), _weights(out)
    assert ref_weights.keys() == weights.keys()
    differing = [k for k in ref_weights if not torch.equal(ref_weights[k], weights[k])]
    assert differing == [], f"final weights differ after resume: {differing[:5]}"
    assert read_json(out / "metrics.json")["metrics"] == read_json(ref_out / "metrics.json")["metrics"]
