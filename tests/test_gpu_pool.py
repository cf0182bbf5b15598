"""GPU pool: concurrent jobs get distinct ids, a killed job frees its ids, bad pools fail clearly, a
claim that waits too long names the holders, torchrun ranks share one claim."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from segbench.engine import gpu_pool
from segbench.errors import InputError

HOLDER = """
import sys, time
from pathlib import Path
from segbench.engine.gpu_pool import claim
got = claim(int(sys.argv[1]), sys.argv[2].split(","), lock_dir=Path(sys.argv[3]), holder=sys.argv[4] or None)
print(",".join(got.ids), flush=True)
time.sleep(60)
"""


def start_holder(count: int, pool: str, lock_dir: Path, holder: str = "") -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(count), pool, str(lock_dir), holder],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_concurrent_claims_get_distinct_ids(tmp_path: Path) -> None:
    first, ids_a = start_holder(1, "0,1,2", tmp_path)
    second, ids_b = start_holder(2, "0,1,2", tmp_path)
    try:
        assert ids_a == "0" and sorted(ids_b.split(",")) == ["1", "2"]
        with pytest.raises(InputError, match="no 1 free GPU"):
            gpu_pool.claim(1, ["0", "1", "2"], lock_dir=tmp_path, timeout_s=0.6)
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()


def test_killed_holder_frees_its_gpu(tmp_path: Path) -> None:
    proc, ids = start_holder(1, "5", tmp_path)
    assert ids == "5"
    with pytest.raises(InputError):
        gpu_pool.claim(1, ["5"], lock_dir=tmp_path, timeout_s=0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    got = gpu_pool.claim(1, ["5"], lock_dir=tmp_path, timeout_s=5)
    assert got.ids == ["5"]
    got.release()


def test_waiting_claim_proceeds_when_a_gpu_frees(tmp_path: Path) -> None:
    proc, _ = start_holder(1, "0", tmp_path)
    killer = threading.Timer(1.0, proc.kill)
    killer.start()
    start = time.monotonic()
    got = gpu_pool.claim(1, ["0"], lock_dir=tmp_path, timeout_s=20)  # blocks until the holder dies
    waited = time.monotonic() - start
    proc.wait()
    killer.join()
    assert got.ids == ["0"] and waited >= 0.9
    got.release()


def test_claim_is_all_or_nothing(tmp_path: Path) -> None:
    """A claim that cannot get all its ids holds none of them while it waits (no deadlock)."""
    holder, _ = start_holder(1, "1", tmp_path)
    try:
        with pytest.raises(InputError):
            gpu_pool.claim(2, ["0", "1"], lock_dir=tmp_path, timeout_s=0.6)
        got = gpu_pool.claim(1, ["0"], lock_dir=tmp_path, timeout_s=0.2)  # 0 was not left locked
        got.release()
    finally:
        holder.kill()
        holder.wait()


def test_environment_sets_cuda_visible_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gpu_pool.LOCK_DIR_ENV, str(tmp_path))
    env = {gpu_pool.POOL_ENV: "3,4"}
    got = gpu_pool.claim_from_environment(2, env)
    assert got is not None and env["CUDA_VISIBLE_DEVICES"] == "3,4"
    got.release()
    assert gpu_pool.claim_from_environment(0, {gpu_pool.POOL_ENV: "3"}) is None  # no GPU granted: CPU job
    untouched: dict[str, str] = {}
    assert gpu_pool.claim_from_environment(1, untouched) is None and untouched == {}


@pytest.mark.parametrize("text, message", [(" , ", "names no GPU"), ("0,0", "repeats"), ("0,x", "not a GPU")])
def test_bad_pool_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        gpu_pool.parse_pool(text)


def test_more_gpus_than_the_pool_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="lists 2"):
        gpu_pool.claim(3, ["0", "1"], lock_dir=tmp_path)


def test_a_claim_that_times_out_names_the_holder(tmp_path: Path) -> None:
    proc, ids = start_holder(1, "0,1", tmp_path, holder="segbench train r50_fpn-seed0 at paper")
    try:
        assert ids == "0"
        start = time.monotonic()
        with pytest.raises(InputError) as err:
            gpu_pool.claim(2, ["0", "1"], lock_dir=tmp_path, timeout_s=0.3)
        assert time.monotonic() - start < 5
        line = str(err.value)
        assert "\n" not in line and line.startswith("no 2 free GPU(s) in SEGBENCH_GPU_POOL=0,1 after 0.3 s")
        assert f"GPU 0 held by pid {proc.pid}: segbench train r50_fpn-seed0 at paper" in line
        assert "GPU 1" not in line  # free: only the busy ids are named
        assert gpu_pool.TIMEOUT_ENV in line
    finally:
        proc.kill()
        proc.wait()


def test_the_claim_timeout_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gpu_pool.claim_timeout({}) == gpu_pool.DEFAULT_TIMEOUT_S
    assert gpu_pool.claim_timeout({gpu_pool.TIMEOUT_ENV: "2.5"}) == 2.5
    assert gpu_pool.claim_timeout({gpu_pool.TIMEOUT_ENV: "inf"}) == float("inf")
    with pytest.raises(InputError, match="SEGBENCH_GPU_CLAIM_TIMEOUT='soon'"):
        gpu_pool.claim_timeout({gpu_pool.TIMEOUT_ENV: "soon"})
    monkeypatch.setenv(gpu_pool.LOCK_DIR_ENV, str(tmp_path))
    proc, _ = start_holder(1, "7", tmp_path, holder="another job")
    try:
        env = {gpu_pool.POOL_ENV: "7", gpu_pool.TIMEOUT_ENV: "0.2"}
        with pytest.raises(InputError, match="GPU 7 held by pid .*: another job"):
            gpu_pool.claim_from_environment(1, env)
    finally:
        proc.kill()
        proc.wait()


def test_torchrun_ranks_share_local_rank_0s_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun every rank asks for --gpus N: rank 0 claims the N ids, the others read them (a rank
    claiming N ids itself would wait forever for those rank 0 holds)."""
    monkeypatch.setenv(gpu_pool.LOCK_DIR_ENV, str(tmp_path))
    job = {gpu_pool.POOL_ENV: "0,1,2", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "job1"}
    rank0, rank1 = {**job, "LOCAL_RANK": "0"}, {**job, "LOCAL_RANK": "1"}
    got0 = gpu_pool.claim_from_environment(2, rank0, holder="r50_fpn-seed0")
    got1 = gpu_pool.claim_from_environment(2, rank1, holder="r50_fpn-seed0")
    assert got0 is not None and got1 is not None
    assert rank0["CUDA_VISIBLE_DEVICES"] == rank1["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert got1._files == []  # rank 1 holds no lock: rank 0's claim covers the job
    with pytest.raises(InputError, match="GPU 0 held by pid"):  # another job finds 0 and 1 taken
        gpu_pool.claim(2, ["0", "1", "2"], lock_dir=tmp_path, timeout_s=0.2)
    got0.release()
    assert not list(tmp_path.glob("torchrun-*.ids"))  # the published ids go with the claim


RANK_SCRIPT = """
import os
import sys
from pathlib import Path
import torch.distributed as dist
from segbench.engine.gpu_pool import claim_from_environment
claim_from_environment(2, holder="ddp job")
dist.init_process_group("gloo")  # as the training contract does next: rank 0 holds its claim meanwhile
dist.barrier()
# one file per rank: two ranks printing to one pipe may interleave their lines
(Path(sys.argv[1]) / f"rank{os.environ['LOCAL_RANK']}").write_text(os.environ["CUDA_VISIBLE_DEVICES"])
dist.destroy_process_group()
"""


def test_a_real_torchrun_job_with_a_pool_and_two_gpus_does_not_hang(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun absent")
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, gpu_pool.POOL_ENV: "4,5", gpu_pool.LOCK_DIR_ENV: str(tmp_path / "locks")}
    env[gpu_pool.TIMEOUT_ENV] = "20"
    done = subprocess.run(
        [
            str(torchrun if torchrun.exists() else "torchrun"),
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [(tmp_path / f"rank{k}").read_text() for k in (0, 1)] == ["4,5", "4,5"]
