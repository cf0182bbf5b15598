"""The training contract (segbench.engine.contract), written once and run for every family: the schedule
vocabulary, exact resume, the run identity of checkpoints and final models, the log schema, the device
resolver."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from segbench.data import prepare
from segbench.engine import checkpoint, contract, distributed, engine_for, hooks
from segbench.engine import classical as classical_engine
from segbench.engine import maskrcnn as maskrcnn_engine
from segbench.engine import sliding_window as sliding_window_engine
from segbench.engine import unet as unet_engine
from segbench.errors import InputError
from segbench.io import append_jsonl, read_jsonl
from segbench.provenance import config_hash
from segbench.registry import load_registry, resolve_run, runs_for_tables, scales, table_names

FAMILIES = {  # family -> (its TrainingFamily class, a smoke run, that run's dataset)
    "maskrcnn": (maskrcnn_engine.MaskRCNNFamily, "r50_c4", "shapes_smoke"),
    "unet": (unet_engine.UNetFamily, "unet_isbi", "em_smoke"),
    "sliding_window": (sliding_window_engine.SlidingWindowFamily, "swcnn_isbi", "em_smoke"),
}
ITERATIONS, EVERY = 4, 2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for name in ("shapes_smoke", "em_smoke"):
        prepare(name, root, progress=False)
    return root


def smoke_config(family: str, seed: int = 0) -> dict[str, Any]:
    """The family's smoke run, 4 iterations with checkpoints every 2 (the U-Net shrunk to depth 2)."""
    cfg = resolve_run(FAMILIES[family][1], "smoke", seed)
    cfg["schedule"].update(iterations=ITERATIONS, checkpoint_every=EVERY)
    if family == "unet":
        cfg["model"].update(depth=2, base_channels=2)
        cfg["input"]["tile"] = 60
    return cfg


def train(family: str, cfg: dict[str, Any], run_dir: Path, data_root: Path) -> dict[str, Any]:
    return engine_for(family).train(cfg, run_dir, data_root, device="cpu")


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / checkpoint.FINAL_MODEL, weights_only=True)["model"]


@pytest.fixture(scope="module")
def finished(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, Path, dict]]:
    """One uninterrupted run per family: (cfg, run dir, summary)."""
    out = {}
    for family in FAMILIES:
        cfg, run_dir = smoke_config(family), tmp_path_factory.mktemp(family)
        out[family] = (cfg, run_dir, train(family, cfg, run_dir, data_root))
    return out


# -- schedule -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", scales())
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_registry_schedule_parses_into_one_vocabulary(family, scale):
    reg = load_registry()
    at_scale = {rs.run for rs in runs_for_tables(table_names(reg, scale), scale, reg)}
    runs = [r for r, entry in reg["runs"].items() if entry["family"] == family and r in at_scale]
    if not runs:
        pytest.skip(f"no {family} run is defined at scale {scale}")
    for run in runs:
        cfg = resolve_run(run, scale, 0)
        digest = config_hash(cfg)
        schedule = FAMILIES[family][0](cfg, Path("unused"), Path("unused")).schedule(replicas=1, gpus=1)
        assert schedule.iterations > 0 and schedule.images_per_batch >= 1 and schedule.base_lr > 0
        assert schedule.checkpoint_every >= 1
        assert config_hash(cfg) == digest  # parsing reads the config, never rewrites it


def test_registry_spellings_are_aliases_of_the_contract_vocabulary():
    unet = contract.parse_schedule(
        {"iterations": 10, "lr": 0.01, "batch_size": 2}, unet_engine.SCHEDULE_DEFAULTS
    )
    assert (unet.base_lr, unet.images_per_batch, unet.momentum, unet.checkpoint_every) == (0.01, 2, 0.99, 10)
    assert unet.lr(0) == 0.01
    same = contract.parse_schedule(
        {"iterations": 10, "base_lr": 0.01, "images_per_batch": 2}, unet_engine.SCHEDULE_DEFAULTS
    )
    assert same == unet
    with pytest.raises(InputError, match="both 'lr' and 'base_lr'"):
        contract.parse_schedule({"iterations": 1, "lr": 0.1, "base_lr": 0.1}, {})
    with pytest.raises(InputError, match="missing base_lr or lr"):
        contract.parse_schedule({"iterations": 1}, unet_engine.SCHEDULE_DEFAULTS)


# -- resume -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
def test_interrupted_run_resumes_to_the_uninterrupted_weights_and_log(
    family, finished, data_root, tmp_path, monkeypatch
):
    cfg, reference_dir, _ = finished[family]
    cls, calls = FAMILIES[family][0], []
    real = cls.loss

    def loss(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == EVERY + 1:  # the step after the first checkpoint
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, "loss", loss)
    with pytest.raises(KeyboardInterrupt):
        train(family, cfg, tmp_path, data_root)
    assert not (tmp_path / checkpoint.FINAL_MODEL).exists()
    append_jsonl(
        tmp_path / contract.TRAIN_LOG, {"iteration": EVERY + 1, "loss": 0.0}
    )  # a line past the checkpoint
    summary = train(family, cfg, tmp_path, data_root)
    assert summary["resumed_from"] == EVERY
    steps = [r for r in read_jsonl(tmp_path / contract.TRAIN_LOG) if "iteration" in r]
    assert [r["iteration"] for r in steps] == list(range(1, ITERATIONS + 1))  # each iteration logged once
    reference = [r for r in read_jsonl(reference_dir / contract.TRAIN_LOG) if "iteration" in r]
    assert [r["loss"] for r in steps] == [r["loss"] for r in reference]
    ref, resumed = final_weights(reference_dir), final_weights(tmp_path)
    assert ref.keys() == resumed.keys() and all(torch.equal(ref[k], resumed[k]) for k in ref)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_finished_run_is_a_no_op(family, finished, data_root):
    cfg, run_dir, summary = finished[family]
    lines = len(read_jsonl(run_dir / contract.TRAIN_LOG))
    assert train(family, cfg, run_dir, data_root) == summary
    assert len(read_jsonl(run_dir / contract.TRAIN_LOG)) == lines


# -- identity -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
def test_checkpoints_and_final_model_carry_the_run_identity(family, finished):
    cfg, run_dir, summary = finished[family]
    identity = {"run": cfg["run"], "config_hash": config_hash(cfg)}
    assert checkpoint.run_identity(cfg) == identity
    for path in [*run_dir.glob("checkpoint_*.pt"), run_dir / checkpoint.FINAL_MODEL]:
        state = torch.load(path, weights_only=True)
        assert {k: state[k] for k in identity} == identity, path.name
    final = checkpoint.load_final(run_dir, identity)
    assert final["summary"] == summary
    assert checkpoint.run_identity(cfg, dataset_hash="abc") == {**identity, "dataset_hash": "abc"}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_another_configs_checkpoint_or_final_model_is_refused(family, finished, data_root, tmp_path):
    cfg, run_dir, _ = finished[family]
    other = smoke_config(family, seed=1)  # another config hash
    for name in ("checkpoint_00000002.pt", checkpoint.FINAL_MODEL):
        target = tmp_path / name.split(".")[0]
        target.mkdir()
        (target / name).write_bytes((run_dir / name).read_bytes())
        with pytest.raises(InputError, match="config_hash=") as err:
            train(family, other, target, data_root)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="config_hash="):
        engine_for(family).evaluate(other, run_dir, data_root, device="cpu")


def test_the_classical_model_is_identity_checked(data_root, tmp_path):
    cfg = resolve_run("threshold_isbi", "smoke", 0)
    classical_engine.train(cfg, tmp_path, data_root)
    state = json.loads((tmp_path / classical_engine.FITTED_MODEL).read_text())
    assert state["config_hash"] == config_hash(cfg) and state["run"] == cfg["run"]
    assert "isbi" in classical_engine.evaluate(cfg, tmp_path, data_root)
    with pytest.raises(InputError, match="config_hash="):
        classical_engine.evaluate(resolve_run("threshold_isbi", "smoke", 1), tmp_path, data_root)


def test_weights_without_identity_need_a_matching_train_record(finished, tmp_path):
    """model_final.pt of the earlier U-Net engine (a bare state dict) is read only where train_done.json
    records the run's config hash."""
    cfg, run_dir, _ = finished["unet"]
    torch.save(final_weights(run_dir), tmp_path / checkpoint.FINAL_MODEL)
    identity = checkpoint.run_identity(cfg)
    with pytest.raises(InputError, match="without a run identity"):
        checkpoint.load_final(tmp_path, identity)
    (tmp_path / "train_done.json").write_text(json.dumps({"config_hash": identity["config_hash"]}))
    assert checkpoint.load_final(tmp_path, identity)["model"].keys() == final_weights(run_dir).keys()


# -- log schema ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_log_schema(family, finished):
    _, run_dir, summary = finished[family]
    first, *steps = read_jsonl(run_dir / contract.TRAIN_LOG)
    assert first["event"] == "schedule" and first["iterations"] == ITERATIONS
    assert [r["iteration"] for r in steps] == list(range(1, ITERATIONS + 1))
    for record in steps:
        assert {"iteration", "lr", "loss", contract.STEP_TIME, "data_time"} <= set(record)
        assert all(math.isfinite(record[k]) for k in ("lr", "loss", contract.STEP_TIME))
    assert summary["final_losses"]["loss"] == steps[-1]["loss"]
    assert {"iterations", "resumed_from", "schedule", "device"} <= set(summary)


def test_older_logs_are_read_in_the_current_schema(tmp_path):
    path = tmp_path / contract.TRAIN_LOG
    path.write_text(
        '{"iteration": 1, "loss": 0.5, "lr": 0.01, "seconds": 0.2}\n'
        '{"iteration": 2, "loss": 0.4, "lr": 0.01, "time": 0.3}\n'
    )
    assert [r[contract.STEP_TIME] for r in contract.read_train_log(path)] == [0.2, 0.3]
    assert all("seconds" not in r for r in contract.read_train_log(path))


# -- devices ------------------------------------------------------------------------------------------
def test_device_resolver_gives_one_line_errors(monkeypatch):
    assert distributed.resolve_device("cpu") == torch.device("cpu")
    for bad in ("banana", "cuda:x", "gpu"):
        with pytest.raises(InputError, match="expected cpu, cuda or cuda:N") as err:
            distributed.resolve_device(bad)
        assert "\n" not in str(err.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.resolve_device(None) == torch.device("cpu")
    with pytest.raises(InputError, match="CUDA is not available on this machine; use --device cpu") as err:
        distributed.resolve_device("cuda")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_engine_refuses_a_bad_device_before_training(family, data_root, tmp_path):
    with pytest.raises(InputError, match="--device 'banana'"):
        engine_for(family).train(smoke_config(family), tmp_path, data_root, device="banana")
    assert not (tmp_path / contract.TRAIN_LOG).exists()


# -- a new family is a small class --------------------------------------------------------------------
class ToyFamily(contract.FamilyBase):
    """A family in a few lines: a linear model fitted to a noiseless regression, batch i drawn from seed i."""

    schedule_defaults = {"momentum": 0.9, "weight_decay": 0.0}

    def __init__(self, cfg: dict[str, Any], data_root: Path, run_dir: Path) -> None:
        self.cfg = cfg

    def schedule(self, *, replicas: int, gpus: int) -> contract.Schedule:
        return contract.parse_schedule(self.cfg["schedule"], self.schedule_defaults, replicas=replicas)

    def build_model(self, schedule: contract.Schedule) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))

    def batches(self, schedule, replica, device, start):
        for i in itertools.count(start):
            x = torch.randn(schedule.images_per_batch, 3, generator=torch.Generator().manual_seed(i))
            yield x, x.sum(1, keepdim=True)

    def loss(self, net, batch, device, amp):
        x, y = batch
        loss = torch.nn.functional.mse_loss(net(x.to(device)), y.to(device))
        return loss, {"loss": loss.detach()}

    def summary(self) -> dict[str, Any]:
        return {"toy": True}


def test_a_new_family_gets_training_resume_and_identity_from_the_contract(tmp_path):
    cfg = {
        "run": "toy",
        "run_id": "toy-seed0",
        "seed": 0,
        "schedule": {"iterations": 6, "lr": 0.05, "batch_size": 4, "checkpoint_every": 2},
    }
    straight = contract.train(ToyFamily(cfg, tmp_path, tmp_path / "a"), cfg, tmp_path / "a", device="cpu")
    assert straight["toy"] and straight["schedule"]["base_lr"] == 0.05 and straight["resumed_from"] is None
    interrupted = tmp_path / "b"
    contract.train(ToyFamily(cfg, tmp_path, interrupted), cfg, interrupted, device="cpu")
    for name in (
        "checkpoint_00000006.pt",
        checkpoint.FINAL_MODEL,
    ):  # as if killed after iteration 4's checkpoint
        (interrupted / name).unlink()
    resumed = contract.train(ToyFamily(cfg, tmp_path, interrupted), cfg, interrupted, device="cpu")
    assert resumed["resumed_from"] == 4 and resumed["final_losses"] == straight["final_losses"]
    a, b = final_weights(tmp_path / "a"), final_weights(interrupted)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(InputError, match="config_hash="):
        checkpoint.load_final(interrupted, checkpoint.run_identity({**cfg, "seed": 1}))


def test_checkpoints_of_the_earlier_unet_engine_resume_by_config_hash(tmp_path):
    """They carry ``run_id`` instead of ``run``; the config hash still decides."""
    cfg = smoke_config("unet")
    identity = checkpoint.run_identity(cfg)
    path = tmp_path / "checkpoint_00000002.pt"
    torch.save({"iteration": 2, "run_id": cfg["run_id"], "config_hash": identity["config_hash"]}, path)
    assert checkpoint.load_identified(path, identity)["iteration"] == 2
    torch.save({"iteration": 2, "run_id": cfg["run_id"], "config_hash": "0" * 16}, path)
    with pytest.raises(InputError, match="config_hash="):
        checkpoint.load_identified(path, identity)


class _Recorder(hooks.HookBase):
    """A caller's hook: sees every step in order, after the log line and before the checkpoint."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, bool, bool]] = []

    def _seen(self, what: str, loop: contract.Loop) -> None:
        log, ckpt = loop.run_dir / contract.TRAIN_LOG, loop.run_dir / f"checkpoint_{loop.iteration:08d}.pt"
        logged = log.exists() and f'"iteration": {loop.iteration},' in log.read_text()
        self.events.append((what, loop.iteration, logged, ckpt.exists()))

    def before_train(self, loop: contract.Loop) -> None:
        self._seen("before", loop)

    def after_step(self, loop: contract.Loop) -> None:
        assert loop.losses["loss"] > 0 and loop.lr == loop.schedule.lr(loop.iteration - 1)
        self._seen("step", loop)

    def after_train(self, loop: contract.Loop) -> None:
        self._seen("after", loop)


def test_hooks_run_in_order_and_leave_training_unchanged(tmp_path):
    cfg = {
        "run": "toy",
        "run_id": "toy-seed0",
        "seed": 0,
        "schedule": {"iterations": 4, "lr": 0.05, "batch_size": 4, "checkpoint_every": 2},
    }
    plain = contract.train(ToyFamily(cfg, tmp_path, tmp_path / "a"), cfg, tmp_path / "a", device="cpu")
    hook = _Recorder()
    hooked = contract.train(
        ToyFamily(cfg, tmp_path, tmp_path / "b"), cfg, tmp_path / "b", device="cpu", hooks=[hook]
    )
    assert hooked["final_losses"] == plain["final_losses"]
    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # each step: logged before the hook runs, checkpointed only after it (CheckpointHook comes last)
    assert hook.events == [
        ("before", 0, False, False),
        ("step", 1, True, False),
        ("step", 2, True, False),
        ("step", 3, True, False),
        ("step", 4, True, False),
        ("after", 4, True, True),
    ]
