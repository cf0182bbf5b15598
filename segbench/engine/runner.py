"""Train and evaluate one run instance with its records: the single path that the CLI, Snakemake's rules
(through the CLI) and ``segbench compare`` all take.

``train_run`` writes ``config.json`` and, when the engine returns, ``train_done.json``; ``evaluate_run``
writes ``metrics.json``. Both are atomic and carry provenance. A finished run whose config hash matches
is not retrained (``force`` retrains); an interrupted one resumes from its newest checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segbench.engine import engine_for
from segbench.engine.imagenet import imagenet_source, require_imagenet
from segbench.engine.runlock import run_lock
from segbench.errors import InputError, RunError, SegbenchError
from segbench.io import read_json, write_json_atomic
from segbench.launch import require_cuda, scale_device
from segbench.paths import child_path
from segbench.provenance import config_hash, provenance
from segbench.records import EVAL_CURVE
from segbench.schedule import effective_schedule
from segbench.status import STALE, TRAINED, is_evaluated, is_trained, run_state


def is_main_process() -> bool:
    """Rank 0 under torchrun (``RANK``), or a plain single process: the one that writes the records."""
    return int(os.environ.get("RANK", "0")) == 0


def dataset_of(cfg: dict[str, Any], data_root: Path, *, verify: bool = False) -> dict[str, Any] | None:
    """The run's dataset checked against its MANIFEST (a changed synthetic one is regenerated, a changed
    real one refused) and named by its content hash, for the provenance; ``None`` without a MANIFEST."""
    name = cfg.get("dataset", {}).get("name")
    if not name:
        return None
    from segbench.data import dataset_dir, dataset_identity, prepare

    if cfg["dataset"].get("source") in ("synthetic", "derived") and not dataset_dir(name, data_root).exists():
        # generated (or derived from its prepared source) on first use (deterministic, seconds), under the
        # dataset's lock: Snakemake's train jobs do not depend on a generated dataset's MANIFEST, so
        # generating it reruns nothing. A directory without a MANIFEST is data someone placed there: used
        # as it is, never overwritten.
        prepare(name, data_root, progress=False, entry=cfg["dataset"])
    return dataset_identity(name, data_root, verify=verify, entry=cfg["dataset"])


def schedule_record(cfg: dict[str, Any], gpus: int) -> dict[str, Any] | None:
    """The schedule this process group trains ``cfg`` with (:func:`segbench.schedule.effective_schedule`
    for torchrun's ``WORLD_SIZE`` replicas), as ``config.json`` records it; None for a classical run."""
    schedule = effective_schedule(cfg, replicas=int(os.environ.get("WORLD_SIZE", "1")), gpus=gpus)
    return None if schedule is None else schedule.record()


def train_run(
    cfg: dict[str, Any],
    run_dir: Path,
    data_root: Path,
    *,
    device: str | None = None,
    gpus: int = 0,
    force: bool = False,
    verify: bool = False,
) -> dict[str, Any]:
    """Train (or resume) one run instance; returns the train record. The dataset is checked first
    (size + mtime of every file, sha256 where they differ or with ``verify``)."""
    engine = engine_for(cfg["family"])  # "not implemented yet" before anything is written
    digest = config_hash(cfg)
    done = run_dir / "train_done.json"
    # the one staleness rule (segbench.status.run_state): a current run is not retrained; a stale one
    # whose hash still matches (its recorded config was edited, or it trained from a backbone other than
    # the one now pinned) retrains from scratch; one with another hash has its records set aside below
    state = run_state(cfg, run_dir).state
    if not force and state in TRAINED:
        return read_json(done, "train record")
    force = force or (state == STALE and is_trained(cfg, run_dir))
    device = preflight(cfg, device=device, gpus=gpus)
    main = is_main_process()
    dataset = dataset_of(cfg, data_root, verify=verify) if main else None
    with run_lock(run_dir, "train") if main else contextlib.nullcontext():
        if not force and run_state(cfg, run_dir).state in TRAINED:  # finished by another writer meanwhile
            return read_json(done, "train record")
        fresh = not run_dir.exists()
        start = time.perf_counter()
        with _discard_if_unstarted(run_dir, fresh and main):
            if main:
                set_aside_stale(run_dir, digest, force=force)
                run_dir.mkdir(parents=True, exist_ok=True)
                write_json_atomic(
                    run_dir / "config.json",
                    {
                        "config": cfg,
                        "config_hash": digest,
                        # what trains, after every overlay and the linear scaling rule (not hashed)
                        "schedule": schedule_record(cfg, gpus),
                        "provenance": provenance(
                            cfg, seeds=[cfg["seed"]], scale=cfg["scale"], dataset=dataset
                        ),
                    },
                )
            with _plugin_faults(cfg, "training"):
                with imagenet_source(cfg, data_root):  # the rehearsal's stand-in ImageNet weights
                    summary = engine.train(cfg, run_dir, data_root, device=device, gpus=gpus)
        ran = summary.pop("determinism", None)  # the training contract's record: provenance, not summary
        record = {
            "run_id": cfg["run_id"],
            "config_hash": digest,
            "summary": summary,
            "provenance": provenance(
                cfg,
                seeds=[cfg["seed"]],
                wall_time_s=time.perf_counter() - start,
                scale=cfg["scale"],
                dataset=dataset,
                determinism=ran,
                backbone=backbone_of(cfg, run_dir),
            ),
        }
        if main:  # under torchrun every replica trains; rank 0 alone writes the records
            write_json_atomic(done, record)
    return record


def backbone_of(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """File and sha256 of the miniature-pretrained backbone a run trained from (None at scales that
    start from ImageNet weights or from scratch): the provenance that tells an audit whether its rerun
    started from the same weights."""
    if not cfg.get("pretraining"):
        return None
    from segbench.engine.pretrain import backbone_identity
    from segbench.paths import run_pretrained_weights

    path = run_pretrained_weights(cfg, run_dir)
    return backbone_identity(path) if path.exists() else None


def preflight(
    cfg: dict[str, Any], *, device: str | None, gpus: int = 0, evaluation: bool = False
) -> str | None:
    """What must hold before a run trains or evaluates, checked before anything is written; returns the
    device to use (the scale's ``device`` where ``device`` is None: the rehearsal's cpu). A run that needs
    a GPU refuses to start without usable CUDA unless the device is explicit (segbench.launch), and a
    paper-scale Mask R-CNN run without its ImageNet file (engine/imagenet.py); one line each."""
    device = device if device is not None else scale_device(str(cfg["scale"]))
    require_cuda(cfg, device=device, gpus=gpus, evaluation=evaluation)
    require_imagenet(cfg)
    return device


UNSTARTED_FILES = ("config.json", "train_log.jsonl", EVAL_CURVE)  # a curve point may precede checkpoint 1


@contextlib.contextmanager
def _discard_if_unstarted(run_dir: Path, fresh: bool) -> Iterator[None]:
    """When a run directory this call created fails before its first checkpoint, remove it again, so no
    folder with a ``config.json`` looks like a run that started (nothing of value is lost)."""
    try:
        yield
    except BaseException:
        from segbench.engine.checkpoint import list_checkpoints  # torch is imported only once training runs

        if fresh and not list_checkpoints(run_dir):
            for name in UNSTARTED_FILES:
                (run_dir / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if nothing else is in it
        raise


@contextlib.contextmanager
def _plugin_faults(cfg: dict[str, Any], stage: str) -> Iterator[None]:
    """A method run whose plugin raises (after passing the contract probe) stops with one line naming the
    plugin, the run and the exception, instead of a traceback. Runs without a plugin are unaffected."""
    method = cfg.get("method")
    if not method:
        yield
        return
    try:
        yield
    except (SegbenchError, OSError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - third-party code: any exception is the plugin's fault
        from segbench.plugins import failure_site

        spec = method.get("spec", method) if isinstance(method, dict) else method
        detail = " ".join(str(exc).split())[:300]
        raise RunError(
            f"{cfg['run_id']}: plugin {spec!r} raised {type(exc).__name__} during {stage} ({detail}) at "
            f"{failure_site(str(spec), exc)}; fix the plugin (it passed the contract probe but fails on real data)"
        ) from exc


def set_aside_stale(run_dir: Path, digest: str, *, force: bool = False) -> Path | None:
    """Move a previous training of this run directory out of the way when its recorded config
    (``config.json``) differs from ``digest`` (the registry entry changed) or ``force`` is set, so the
    new training starts clean instead of resuming from checkpoints of another config. The old files go to
    ``stale-<old hash>/`` (nothing is deleted); a checkpoint copied in from elsewhere is still refused."""
    record = run_dir / "config.json"
    if not record.exists():
        return None
    old = read_json(record, "run config").get("config_hash")
    if old == digest and not force:
        return None
    # the hash is the record's content: a forged one ('abc/../../x') must not move files out of run_dir
    target = child_path(run_dir, f"stale-{old}", what="recorded config_hash (stale-<hash>)", source=record)
    target.mkdir(exist_ok=True)
    for path in run_dir.iterdir():
        if path.is_file():
            path.replace(target / path.name)
    return target


def evaluate_run(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None
) -> dict[str, Any]:
    """Evaluate a trained run instance into ``metrics.json``; returns the metrics record."""
    engine = engine_for(cfg["family"])
    done = run_dir / "train_done.json"
    if not done.exists():
        raise InputError(
            f"{done}: run not trained yet; run `segbench train --run {cfg['run']} "
            f"--scale {cfg['scale']} --seed {cfg['seed']}` first"
        )
    digest = config_hash(cfg)
    trained = read_json(done, "train record")
    if trained.get("config_hash") != digest:
        raise InputError(
            f"{done}: trained with config {trained.get('config_hash')}, the registry now gives "
            f"{digest}; retrain with `segbench train --force`"
        )
    device = preflight(cfg, device=device, evaluation=True)
    dataset = dataset_of(cfg, data_root)
    start = time.perf_counter()
    with run_lock(run_dir, "evaluate"):
        with _plugin_faults(cfg, "evaluation"):
            with imagenet_source(cfg, data_root):
                metrics = engine.evaluate(cfg, run_dir, data_root, device=device)
        record = {
            "run_id": cfg["run_id"],
            "run": cfg["run"],
            "seed": cfg["seed"],
            "scale": cfg["scale"],
            "config_hash": digest,
            "metrics": metrics,
            "method": cfg.get("method"),
            "train_wall_time_s": trained.get("provenance", {}).get("wall_time_s"),
            "provenance": provenance(
                cfg,
                seeds=[cfg["seed"]],
                wall_time_s=time.perf_counter() - start,
                scale=cfg["scale"],
                dataset=dataset,
                backbone=trained.get("provenance", {}).get("backbone"),
            ),
        }
        write_json_atomic(run_dir / "metrics.json", record)
    return record


def ensure_evaluated(
    cfg: dict[str, Any], run_dir: Path, data_root: Path, *, device: str | None = None
) -> dict[str, Any]:
    """Reuse a run's metrics when they match its config; otherwise train (resuming) and evaluate."""
    if is_evaluated(cfg, run_dir):
        return read_json(run_dir / "metrics.json", "run metrics")
    train_run(cfg, run_dir, data_root, device=device)
    return evaluate_run(cfg, run_dir, data_root, device=device)
