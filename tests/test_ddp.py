"""Data-parallel training through torchrun on the CPU (gloo): two processes with the same global batch
follow one process's first steps within tolerance, and only rank 0 writes the run's records; launched as
the workflow launches it (``--gpus 2`` with a GPU pool: rank 0 claims for both ranks). The process group
has an explicit timeout, which also bounds the other ranks' wait for rank 0 (its evaluation points)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from segbench.data import prepare

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def train(cmd: list[str], results: Path, data: Path, *extra: str, env: dict | None = None) -> list[dict]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    args = [
        "train",
        "--run",
        "r50_fpn",
        "--scale",
        "smoke",
        "--results",
        str(results),
        "--data-root",
        str(data),
        *extra,
    ]
    done = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    log = results / "smoke" / "runs" / "r50_fpn-seed0" / "train_log.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_two_replicas_follow_one_process(tmp_path):
    if shutil.which("torchrun", path=str(BIN)) is None:
        pytest.skip("torchrun absent")
    data = tmp_path / "data"
    prepare("shapes_smoke", data)
    single = train([str(BIN / "segbench")], tmp_path / "single", data)
    # as the workflow launches a 2-GPU run (segbench.launch), with a GPU pool: on the CPU the ids are
    # only claimed (rank 0 for both ranks; a rank claiming both itself would wait forever)
    pool = {"SEGBENCH_GPU_POOL": "0,1", "SEGBENCH_GPU_LOCK_DIR": str(tmp_path / "locks")}
    ddp = train(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "segbench", "--"],
        tmp_path / "ddp",
        data,
        "--gpus",
        "2",
        "--device",
        "cpu",
        env={**pool, "SEGBENCH_GPU_CLAIM_TIMEOUT": "60", "SEGBENCH_DIST_TIMEOUT_MIN": "10"},
    )
    schedule_single, schedule_ddp = single[0], ddp[0]
    assert schedule_single["replicas"] == 1 and schedule_ddp["replicas"] == 2
    assert schedule_ddp["images_per_batch"] == schedule_single["images_per_batch"]  # same global batch
    assert schedule_ddp["images_per_replica"] * 2 == schedule_single["images_per_replica"]
    losses_single = [r["loss"] for r in single[1:]]
    losses_ddp = [r["loss"] for r in ddp[1:]]
    assert len(losses_single) == len(losses_ddp) == schedule_single["iterations"]  # rank 0 logs once
    # Same images and seed; per-replica batch-norm statistics and RoI sampling differ, so not bitwise. The
    # RPN's terms (thousands of anchors) follow step by step; the RoI terms rest on a handful of positive
    # RoIs per 64-px smoke image, whose mask loss on pretrained features swings by 3x with the sample, so
    # the total is compared over the run.
    for a, b in zip(single[1:], ddp[1:], strict=True):
        for term in ("loss_objectness", "loss_rpn_box_reg"):
            assert abs(a[term] - b[term]) / a[term] < 0.10, (term, a[term], b[term])
    mean_single, mean_ddp = sum(losses_single) / len(losses_single), sum(losses_ddp) / len(losses_ddp)
    assert abs(mean_single - mean_ddp) / mean_single < 0.15
    run_dir = tmp_path / "ddp" / "smoke" / "runs" / "r50_fpn-seed0"
    summary = json.loads((run_dir / "train_done.json").read_text())["summary"]
    assert summary["gpus_granted"] == 2 and summary["device"] == "cpu"
    assert summary["backbone_init"]["backbone_weights"] == "synthetic-pretrained"  # smoke: in miniature
    assert not list((tmp_path / "locks").glob("torchrun-*.ids"))  # rank 0's published ids went with it
    assert not list(run_dir.glob(".*.tmp"))


WAIT_SCRIPT = """
import sys
import time
from pathlib import Path
from segbench.engine.distributed import init_replica, wait_for_main
replica = init_replica()
if replica.is_main:
    time.sleep(float(sys.argv[1]))  # rank 0 alone: an evaluation point
wait_for_main(replica)
(Path(sys.argv[2]) / f"released{replica.rank}").touch()  # a file per rank: printed lines may interleave
"""


@pytest.mark.parametrize("timeout_min, ok", [("1", True), ("0.02", False)])
def test_the_other_ranks_wait_for_rank_0_within_the_distributed_timeout(timeout_min, ok, tmp_path):
    """Rank 1 waits on a gloo barrier bounded by SEGBENCH_DIST_TIMEOUT_MIN: released when rank 0 is done
    within it (1 min > 3 s), failed when rank 0 takes longer (1.2 s < 3 s), instead of NCCL's default."""
    if shutil.which("torchrun", path=str(BIN)) is None:
        pytest.skip("torchrun absent")
    script = tmp_path / "wait.py"
    script.write_text(WAIT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEGBENCH_DIST_TIMEOUT_MIN": timeout_min}
    done = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(script), "3", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (done.returncode == 0) == ok, done.stderr[-2000:]
    assert (tmp_path / "released1").exists() == ok


def test_the_distributed_timeout_is_explicit_and_configurable(monkeypatch) -> None:
    from datetime import timedelta

    from segbench.engine.distributed import DIST_TIMEOUT_ENV, dist_timeout
    from segbench.errors import InputError

    monkeypatch.delenv(DIST_TIMEOUT_ENV, raising=False)
    assert dist_timeout() == timedelta(minutes=60)
    monkeypatch.setenv(DIST_TIMEOUT_ENV, "90")
    assert dist_timeout() == timedelta(minutes=90)
    monkeypatch.setenv(DIST_TIMEOUT_ENV, "0")
    with pytest.raises(InputError, match="SEGBENCH_DIST_TIMEOUT_MIN='0'"):
        dist_timeout()
