"""A run instance's complete config: the run's keys overlaid by its scale (:func:`resolve_run`), the input
of its config hash and of everything it trains."""

from __future__ import annotations

import copy
from typing import Any

from segbench.errors import InputError
from segbench.registry.query import (
    _dataset_entry,
    check_scale,
    dataset_for,
    run_id,
    runs_for_tables,
    table_names,
)
from segbench.registry.validate import load_registry


def resolve_run(
    run: str, scale: str, seed: int = 0, registry: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The complete config of one run instance: run keys overlaid by the scale's family overlay."""
    reg = registry or load_registry()
    check_scale(scale, reg)
    if run not in reg["runs"]:
        raise InputError(f"unknown run {run!r}; `segbench list --runs` shows the runs")
    spec = reg["runs"][run]
    family = spec["family"]
    overlay = reg["scales"][scale]["families"].get(family, {})
    # The scale's model keys fill in sizes; keys a run sets deliberately win over them.
    model = {**copy.deepcopy(overlay.get("model", {})), **copy.deepcopy(spec["model"])}
    # Per-architecture input sizes (mini: the stride-32 C5 runs see 256 px, an 8 x 8 map, Table 2d)
    inputs = {**overlay.get("input", {}), **overlay.get("input_by_arch", {}).get(model.get("arch"), {})}
    # The scale's overrides for a subset of the runs, each over the last (experiments.yaml, "Scales"): per
    # backbone (mini: ResNet-101's warm-up, ResNeXt's halved rate), per task (paper: the keypoint schedule),
    # per dataset (mini: the person runs at 320 px, 2000 x 8); then the run's own keys (e.g. amp), before its
    # budget scales the counts. A run no override names keeps the family's keys, and so its config hash.
    overrides = [
        overlay.get("by_backbone", {}).get(model.get("backbone"), {}),
        *(overlay.get("by_task", {}).get(task, {}) for task in model.get("tasks", ())),
        overlay.get("by_dataset", {}).get(spec["dataset"], {}),
    ]
    schedule = dict(overlay.get("schedule", {}))
    for override in overrides:
        inputs.update(override.get("input", {}))
        schedule.update(override.get("schedule", {}))
    schedule.update(spec.get("schedule", {}))
    dataset_name = dataset_for(run, scale, reg)
    cfg = {
        "run": run,
        "run_id": run_id(run, seed),
        "family": family,
        "scale": scale,
        "seed": int(seed),
        "dataset": {"name": dataset_name, "logical": spec["dataset"], **_dataset_entry(dataset_name)},
        "model": model,
        "input": copy.deepcopy(inputs),
        "schedule": scaled_schedule(schedule, spec.get("budget")),
    }
    imagenet = reg["scales"][scale].get("imagenet")
    if (
        imagenet and family == "maskrcnn"
    ):  # "stand-in": the rehearsal's random ImageNet files (engine/imagenet.py)
        cfg["imagenet"] = imagenet
    if overlay.get("pretraining") and model.get("pretrained", True):
        cfg["pretraining"] = pretraining_spec(model, overlay["pretraining"])
        if reg["scales"][scale].get("pretrained_from"):  # another scale's backbones (real_cpu: mini's)
            cfg["pretrained_from"] = reg["scales"][scale]["pretrained_from"]
    cross_validation = reg["scales"][scale].get("cross_validation")
    if cross_validation:  # seed k is fold k (segbench.data.biomedical.held_out_split); seeds the RNG too
        folds = int(cross_validation["folds"])
        if not 0 <= int(seed) < folds:
            raise InputError(
                f"seed {seed} at scale {scale!r}: the scale runs {folds}-fold cross-validation "
                f"and seed k is fold k; choose a seed in 0..{folds - 1}"
            )
        cfg["split"] = {"folds": folds, "fold": int(seed)}
    return cfg


def pretraining_spec(model: dict[str, Any], pretraining: dict[str, Any]) -> dict[str, Any]:
    """What a run's backbone is pretrained with at a scale that pretrains in miniature
    (:mod:`segbench.engine.pretrain`): its architecture keys plus the scale's corpus and schedule. Part of
    the run's config (and hash), and the key of the cached weights (:func:`segbench.paths.pretrained_weights`)."""
    backbone = str(model.get("backbone", "resnet50"))
    blocks = model.get("blocks", {})
    blocks = blocks.get(backbone) if isinstance(blocks, dict) else blocks
    if blocks is None:
        raise InputError(f"pretraining: no 'blocks' for backbone {backbone!r} at this scale; add them")
    return {
        "backbone": backbone,
        # "auto" is trainable BatchNorm for a backbone not initialised from ImageNet (models/maskrcnn/backbones.py)
        "norm": "bn" if model.get("norm", "auto") == "auto" else str(model["norm"]),
        "width_divisor": int(model.get("width_divisor", 1)),
        "blocks": [int(b) for b in blocks],
        "corpus": copy.deepcopy(pretraining.get("corpus", {})),
        "schedule": copy.deepcopy(pretraining["schedule"]),
        "seed": int(pretraining.get("seed", 0)),
    }


def pretraining_specs(scale: str, registry: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every distinct backbone pretraining spec the runs of the tables defined at ``scale`` need, by spec
    hash (:func:`segbench.provenance.config_hash`); empty where the scale keeps ImageNet weights."""
    from segbench.provenance import config_hash

    reg = registry or load_registry()
    specs: dict[str, dict[str, Any]] = {}
    for rs in runs_for_tables(table_names(reg, scale), scale, reg):
        spec = resolve_run(rs.run, scale, rs.seed, reg).get("pretraining")
        if spec:
            specs.setdefault(config_hash(spec), spec)
    return specs


def scaled_schedule(schedule: dict[str, Any], budget: float | None) -> dict[str, Any]:
    """The scale's schedule for a run; a run's ``budget`` (e.g. 0.25) multiplies its iterations and its lr
    decay and checkpoint points (at least 1 each), the other keys stay: the runs of an error-vs-compute
    table. Without a budget the schedule is returned as it is (so no other run's config hash changes)."""
    out = copy.deepcopy(schedule)
    if budget is None or not out:
        return out

    def scale(n: Any) -> int:
        return max(1, round(int(n) * float(budget)))

    for key in ("iterations", "checkpoint_every", "warmup_iters"):
        if out.get(key):
            out[key] = scale(out[key])
    if "lr_decay_at" in out:
        out["lr_decay_at"] = [scale(step) for step in out["lr_decay_at"]]
    return out
