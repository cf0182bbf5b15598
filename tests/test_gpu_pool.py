"""GPU pool: concurrent jobs get distinct ids, a killed job frees its ids, bad pools fail clearly."""

from __future__ import annotations

import os
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
got = claim(int(sys.argv[1]), sys.argv[2].split(","), lock_dir=Path(sys.argv[3]))
print(",".join(got.ids), flush=True)
time.sleep(60)
"""


def start_holder(count: int, pool: str, lock_dir: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(count), pool, str(lock_dir)], stdout=subprocess.PIPE, text=True
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
