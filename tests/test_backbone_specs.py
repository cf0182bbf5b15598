"""A new backbone is two edits: a spec registered beside its builder, and the registry runs that use it.

This module plays the builder's file (it registers a toy ResNet-26); a registry file of its own plays
experiments.yaml. Nothing else changes: the registry check, the model builder, the pretraining spec and
the planner all read the spec."""

from __future__ import annotations

import pytest
import yaml

from segbench.errors import InputError
from segbench.models import build
from segbench.models.backbone_specs import BACKBONES, BackboneSpec, backbone_spec, register_backbone
from segbench.registry import load_registry, registry_path, resolve_run

TOY = BackboneSpec("resnet26_toy", "ResNet-26 (toy)", (2, 2, 2, 2), cost=0.7, cost_why="toy: 0.7 x ResNet-50")


@pytest.fixture
def toy_backbone():
    register_backbone(TOY)
    yield TOY
    BACKBONES.unregister(TOY.name)


def registry_with_toy_run(tmp_path) -> str:
    data = yaml.safe_load(registry_path().read_text())
    run = dict(data["runs"]["r50_fpn"])
    data["runs"]["r26_toy_fpn"] = {**run, "model": {**run["model"], "backbone": TOY.name}}
    data["scales"]["mini"]["families"]["maskrcnn"]["model"]["blocks"][TOY.name] = [
        1,
        1,
        1,
        1,
    ]  # mini's depths
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_a_registered_backbone_resolves_builds_and_pretrains(tmp_path, toy_backbone):
    reg = load_registry(registry_with_toy_run(tmp_path))
    cfg = resolve_run("r26_toy_fpn", "mini", 0, reg)
    assert cfg["pretraining"]["backbone"] == TOY.name and cfg["pretraining"]["blocks"] == [1, 1, 1, 1]
    model = build(cfg)
    trunk = model.backbone.body
    assert [len(getattr(trunk, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    assert backbone_spec(TOY.name).cost == 0.7


def test_an_unregistered_backbone_fails_with_one_line(tmp_path):
    with pytest.raises(InputError, match=r"runs/r26_toy_fpn/model/backbone.*unknown backbone 'resnet26_toy'"):
        load_registry(registry_with_toy_run(tmp_path))
    with pytest.raises(InputError, match="unknown backbone 'resnet26_toy'; known: resnet50"):
        backbone_spec("resnet26_toy")


def test_a_taken_name_is_refused():
    with pytest.raises(InputError, match="backbone 'resnet50' is already registered"):
        register_backbone(BackboneSpec("resnet50", "another", (1, 1, 1, 1)))
