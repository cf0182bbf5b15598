"""The GPU launch rule (segbench.launch, issue 33): multi-GPU runs start as torchrun from the workflow
(local and SLURM profiles), a single process refuses --gpus N > 1, a run that needs a GPU refuses to start
without CUDA unless --device cpu, a paper-scale run refuses without its ImageNet file, and `segbench plan`
uses the same rule. All on the CPU."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segbench.errors import InputError
from segbench.launch import (
    Launcher,
    check_replicas,
    eval_gpus_needed,
    gpus_needed,
    launch_prefix,
    launch_ranks,
    torchrun_command,
)
from segbench.paths import REPO_ROOT
from segbench.registry import load_registry, resolve_run

BIN = Path(sys.executable).parent
REG = load_registry()


def run_segbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    full = {**os.environ, "PATH": path, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run(
        [str(BIN / "segbench"), *args], env=full, capture_output=True, text=True, timeout=300
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The single ``segbench: error:`` line of a refused command (exit 2, no traceback)."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segbench: error: "), result.stderr[-2000:]
    return lines[0]


# -- the rule -------------------------------------------------------------------------------------------
def test_the_gpus_a_run_needs_follow_its_scale() -> None:
    assert gpus_needed(resolve_run("r50_fpn", "paper"), REG) == 8
    assert gpus_needed(resolve_run("r50_fpn", "paper_short"), REG) == 8
    assert gpus_needed(resolve_run("unet_isbi", "paper"), REG) == 1
    assert eval_gpus_needed(resolve_run("r50_fpn", "paper"), REG) == 1
    for scale in ("smoke", "mini"):
        assert gpus_needed(resolve_run("r50_fpn", scale), REG) == 0
    # the rehearsal runs the paper's path on the CPU on purpose: its gpus: 2 only shapes the schedule
    for run in REG["scales"]["rehearsal"]["ci_runs"]:
        cfg = resolve_run(run, "rehearsal")
        assert gpus_needed(cfg, REG) == eval_gpus_needed(cfg, REG) == 0
    assert resolve_run("r50_fpn", "rehearsal")["schedule"]["gpus"] == 2


def test_launch_prefix_is_segbench_for_one_gpu_and_torchrun_above() -> None:
    assert launch_prefix(0) == launch_prefix(1) == ["segbench"]
    assert launch_prefix(2) == ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "segbench"]
    assert f"{Launcher():8}" == "torchrun --standalone --nproc_per_node=8 -m segbench"
    assert f"{Launcher():1}" == "segbench"
    assert (launch_ranks(8, 2), launch_ranks(8, 16), launch_ranks(1, 8), launch_ranks(8)) == (2, 8, 1, 8)


def test_gpus_above_one_in_one_process_is_refused_with_the_torchrun_command() -> None:
    cfg = resolve_run("r50_fpn", "paper")
    argv = ["/x/bin/segbench", "train", "--run", "r50_fpn", "--scale", "paper", "--gpus", "2"]
    with pytest.raises(InputError) as err:
        check_replicas(2, 1, distributed=True, cfg=cfg)
    assert "torchrun --standalone --nproc_per_node=2 -m segbench train --run r50_fpn" in str(err.value)
    assert torchrun_command(2, cfg, argv) == (
        "torchrun --standalone --nproc_per_node=2 -m segbench train --run r50_fpn --scale paper --gpus 2"
    )
    check_replicas(2, 2, distributed=True, cfg=cfg)  # one process per GPU: fine
    check_replicas(1, 1, distributed=False, cfg=cfg)
    with pytest.raises(InputError, match="trains on one GPU; pass --gpus 1"):
        check_replicas(2, 1, distributed=False, cfg=resolve_run("unet_isbi", "paper"))
    with pytest.raises(InputError, match="start it without torchrun"):
        check_replicas(1, 2, distributed=False, cfg=resolve_run("unet_isbi", "paper"))


def test_the_cli_refuses_gpus_2_in_a_single_process(tmp_path: Path) -> None:
    result = run_segbench(
        "train", "--run", "r50_fpn", "--scale", "smoke", "--gpus", "2", "--device", "cpu",
        "--results", str(tmp_path / "results"), "--data-root", str(tmp_path / "data"),
    )  # fmt: skip
    line = one_line_error(result)
    assert "--gpus 2 in a single process" in line
    assert "`torchrun --standalone --nproc_per_node=2 -m segbench train --run r50_fpn --scale smoke" in line
    assert not (tmp_path / "results" / "smoke" / "runs" / "r50_fpn-seed0").exists()  # nothing left


# -- the workflow: dry runs -------------------------------------------------------------------------------
def snakemake_dry_run(tmp_path: Path, *args: str, profile: Path | None = None) -> str:
    cmd = [str(BIN / "snakemake"), "-n", "-p"]
    cmd += ["--profile", str(profile)] if profile else []
    cmd += [
        f"{tmp_path}/results/paper/runs/r50_fpn-seed0/metrics.json",
        f"{tmp_path}/results/paper/runs/unet_isbi-seed0/metrics.json",
        *args,
        "--config",
        "scale=paper",
        f"results={tmp_path}/results",
        f"reports={tmp_path}/reports",
        f"data_root={tmp_path}/data",
    ]
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path}
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


def shell_commands(stdout: str, verb: str) -> dict[str, str]:
    """run -> the shell command of its ``segbench <verb>`` job."""
    found = {}
    for line in stdout.splitlines():
        match = re.search(rf"segbench {verb} --run (\S+) ", line)
        if match:
            found[match.group(1)] = line
    return found


def slurm_profile(tmp_path: Path) -> Path:
    """profiles/slurm itself where the SLURM executor plugin is installed; otherwise a copy without its
    ``executor:`` line (its resources, threads and defaults, on the local dry-run executor)."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None:
        return REPO_ROOT / "profiles" / "slurm"
    settings = yaml.safe_load((REPO_ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    settings.pop("executor")
    folder = tmp_path / "slurm-profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    return folder


@pytest.mark.parametrize("where", ["local", "slurm"])
def test_a_two_gpu_train_rule_expands_to_a_torchrun_command(where: str, tmp_path: Path) -> None:
    profile = slurm_profile(tmp_path) if where == "slurm" else None
    out = snakemake_dry_run(tmp_path, "--resources", "gpu=2", profile=profile)
    train, evaluate = shell_commands(out, "train"), shell_commands(out, "evaluate")
    assert (
        "torchrun --standalone --nproc_per_node=2 -m segbench train --run r50_fpn --scale paper"
        in train["r50_fpn"]
    )
    assert train["r50_fpn"].split(" 2>&1")[0].endswith("--gpus 2")
    # the U-Net trains on one GPU: one process, no torchrun
    assert "torchrun" not in train["unet_isbi"] and " segbench train --run unet_isbi" in train["unet_isbi"]
    assert "--gpus 1" in train["unet_isbi"]
    # evaluation asks for (and claims) one GPU where the training used one
    assert all("--gpus 1" in line for line in evaluate.values()) and set(evaluate) == {"r50_fpn", "unet_isbi"}
    assert "gpu=1" in out.replace(" ", "")


def test_slurm_launches_the_papers_8_gpus_as_8_processes(tmp_path: Path) -> None:
    out = snakemake_dry_run(tmp_path, profile=slurm_profile(tmp_path))
    line = shell_commands(out, "train")["r50_fpn"]
    assert "torchrun --standalone --nproc_per_node=8 -m segbench train" in line and "--gpus 8" in line


# -- no silent CPU fallback, no silent random initialisation ---------------------------------------------
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: CUDA may be usable")
def test_a_paper_scale_train_without_cuda_exits_2_with_one_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    result = run_segbench(
        "train", "--run", "r50_fpn", "--scale", "paper",
        "--results", str(results), "--data-root", str(tmp_path / "data"),
        env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    line = one_line_error(result)
    assert "r50_fpn-seed0 at scale paper trains on 8 GPU(s), but CUDA is not usable here" in line
    assert "torch.cuda.is_available() False" in line and "CUDA_VISIBLE_DEVICES=''" in line
    assert "pass --device cpu" in line
    assert not results.exists()  # refused before anything was written
    result = run_segbench(
        "evaluate", "--run", "r50_fpn", "--scale", "paper",
        "--results", str(results), "--data-root", str(tmp_path / "data"),
    )  # fmt: skip
    assert result.returncode == 2  # not trained yet: says so first


def test_missing_imagenet_files_exit_2_with_one_line(tmp_path: Path) -> None:
    torch_home = tmp_path / "torch-home"
    result = run_segbench(
        "train", "--run", "r50_fpn", "--scale", "paper", "--device", "cpu",
        "--results", str(tmp_path / "results"), "--data-root", str(tmp_path / "data"),
        # no network for the download attempt: a proxy that refuses at once
        env={"TORCH_HOME": str(torch_home), "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"},
    )  # fmt: skip
    line = one_line_error(result)
    expected = torch_home / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    assert "r50_fpn-seed0: the ImageNet weights of resnet50 (ResNet50_Weights.IMAGENET1K_V1)" in line
    assert f"needed at {expected} (not found; the download failed" in line
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in line and "TORCH_HOME" in line
    assert not (tmp_path / "results").exists()


def test_a_corrupt_imagenet_file_is_refused_by_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segbench.engine import imagenet

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    path = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated")
    with pytest.raises(InputError, match="sha256 does not start with 0676ba61"):
        imagenet.require_imagenet(resolve_run("r50_c4", "paper"))
    # no ImageNet file needed: a miniature-pretrained scale, the rehearsal's stand-ins, the U-Net
    assert imagenet.require_imagenet(resolve_run("r50_c4", "mini")) is None
    assert imagenet.require_imagenet(resolve_run("r50_c4", "rehearsal")) is None
    assert imagenet.require_imagenet(resolve_run("unet_isbi", "paper")) is None


# -- segbench plan: the same rule --------------------------------------------------------------------------
def test_plan_uses_the_processes_the_workflow_launches() -> None:
    from segbench.plan import plan

    eight, sixteen, two = (plan("reproduce_table2b", "paper", gpus=g) for g in (8, 16, 2))
    assert {r.gpus for r in eight.runs} == {8} and {r.gpus for r in sixteen.runs} == {8}
    assert {r.gpus for r in two.runs} == {2}
    # 16 GPUs run two 8-process runs side by side: half the wall time of 8, the same GPU-hours
    assert sixteen.gpu_hours == pytest.approx(eight.gpu_hours)
    assert sixteen.wall_hours == pytest.approx(eight.wall_hours / 2)
    assert "torchrun --nproc_per_node=8" in " ".join(sixteen.notes)
