"""The rehearsal scale (#18): the paper scale's settings on generated data in the real layouts, with
stand-in ImageNet files loaded through torchvision's own cache lookup, and bf16 autocast on the CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.ops import FrozenBatchNorm2d

from segbench.data.synthetic import coco2017
from segbench.engine.contract import parse_schedule
from segbench.engine.imagenet import checkpoint_path, imagenet_source, place_stand_in, stand_in_torch_home
from segbench.errors import InputError
from segbench.models.maskrcnn.backbones import build_backbone
from segbench.models.maskrcnn.config import settings_from_config
from segbench.registry import (
    deep_merge,
    expand_derived_scales,
    load_registry,
    resolve_run,
    runs_for_tables,
    table_names,
    validate_registry,
)

REG = load_registry()
# the Mask R-CNN runs of the paper scale's tables (em_*: a real_cpu study, not defined at paper)
MASKRCNN_RUNS = sorted(
    {rs.run for rs in runs_for_tables(table_names(REG, "paper"), "paper", REG)}
    & {name for name, run in REG["runs"].items() if run["family"] == "maskrcnn"}
)


# -- the scale: the paper's settings, a few keys changed ---------------------------------------------
def test_the_rehearsal_defines_every_table_of_the_paper_scale_with_one_seed() -> None:
    assert table_names(REG, "rehearsal") == table_names(REG, "paper")
    assert {t["seeds"]["rehearsal"] for name, t in REG["tables"].items() if "paper" in t["seeds"]} == {1}


@pytest.mark.parametrize("run", MASKRCNN_RUNS)
def test_a_rehearsal_run_has_the_paper_models_inputs_and_schedule_shape(run: str) -> None:
    paper, rehearsal = resolve_run(run, "paper"), resolve_run(run, "rehearsal")
    assert rehearsal["model"] == paper["model"]
    assert rehearsal["input"] == paper["input"] == {"min_size": 800, "max_size": 1333, "hflip": True}
    assert rehearsal["imagenet"] == "stand-in" and "imagenet" not in paper
    p, r = paper["schedule"], rehearsal["schedule"]
    for key in ("base_lr", "lr_decay_factor", "warmup_factor", "momentum", "weight_decay"):
        assert r[key] == p[key], key
    assert (
        1 < r["gpus"] <= r["images_per_batch"]
        and r["iterations"] <= 3
        and r["lr_decay_at"]
        and r["warmup_iters"]
    )
    # the keypoint runs' scale jitter (by_task keypoint, deep-merged from the paper's) survives the cut
    assert r.get("train_scales") == p.get("train_scales")
    assert ("train_scales" in r) == ("keypoint" in paper["model"].get("tasks", ()))


def test_the_rehearsal_schedule_goes_through_the_linear_scaling_rule() -> None:
    cfg = resolve_run("r50_fpn", "rehearsal")
    s = parse_schedule(cfg["schedule"], {}, replicas=1)
    assert s.rescaled is not None and s.rescaled["factor"] == 0.5
    assert (s.images_per_batch, s.iterations, s.lr_decay_at, s.warmup_iters) == (1, 4, [2], 2)
    assert s.base_lr == pytest.approx(0.01) and s.amp  # bf16 autocast on the CPU


def test_amp_is_off_unless_the_schedule_asks() -> None:
    assert not parse_schedule(resolve_run("r50_fpn", "mini")["schedule"], {}).amp


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    assert deep_merge(base, {"a": {"y": [3]}, "c": 4}) == {"a": {"x": 1, "y": [3]}, "b": 2, "c": 4}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2}


def test_a_derived_scale_with_an_unknown_base_is_one_line_naming_it() -> None:
    raw = json.loads(json.dumps(REG))
    raw["scales"]["rehearsal"]["base"] = "papr"
    with pytest.raises(InputError, match=r"scales/rehearsal/base: unknown scale 'papr'"):
        validate_registry(raw)


def test_a_derived_scale_restricted_to_some_tables_defines_only_those() -> None:
    raw = {
        **REG,
        "scales": {**REG["scales"], "short": {"description": "x", "base": "paper", "tables": ["table2c"]}},
    }
    expanded = expand_derived_scales(raw)
    assert [n for n, t in expanded["tables"].items() if "short" in t["seeds"]] == ["table2c"]
    assert expanded["scales"]["short"]["families"] == REG["scales"]["paper"]["families"]


# -- data in COCO 2017's layout ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def coco_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("coco2017")
    coco2017.generate(root, {"num_train": 3, "num_val": 2}, seed=0)
    return root


def test_the_coco_tree_has_the_real_layout_names_and_sizes(coco_tree: Path) -> None:
    for split in ("train2017", "val2017"):
        for stem in ("instances", "person_keypoints"):
            data = json.loads((coco_tree / "annotations" / f"{stem}_{split}.json").read_text())
            for image in data["images"]:
                path = coco_tree / split / image["file_name"]
                assert path.name == f"{image['id']:012d}.jpg"
                with Image.open(path) as im:
                    assert im.format == "JPEG" and im.size == (image["width"], image["height"])
                    assert list(im.size) in coco2017.DEFAULTS["image_sizes"]


def test_the_coco_tree_uses_the_80_real_category_ids_with_their_gaps(coco_tree: Path) -> None:
    data = json.loads((coco_tree / "annotations" / "instances_train2017.json").read_text())
    ids = [c["id"] for c in data["categories"]]
    assert len(ids) == 80 and max(ids) == 90
    assert set(range(1, 91)) - set(ids) == {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    assert {a["category_id"] for a in data["annotations"]} <= set(ids)


def test_the_coco_categories_are_cocos_own(shared_data: Path) -> None:
    real = json.loads((shared_data / "coco_val2014_100" / "instances_val2014_100.json").read_text())
    assert [(c["id"], c["name"], c["supercategory"]) for c in real["categories"]] == list(
        coco2017.COCO_CATEGORIES
    )


def test_the_person_keypoint_file_holds_the_persons_of_the_instance_file(coco_tree: Path) -> None:
    for split in ("train2017", "val2017"):
        inst = json.loads((coco_tree / "annotations" / f"instances_{split}.json").read_text())
        kp = json.loads((coco_tree / "annotations" / f"person_keypoints_{split}.json").read_text())
        assert [c["name"] for c in kp["categories"]] == ["person"] and len(
            kp["categories"][0]["keypoints"]
        ) == 17
        persons = {a["id"] for a in inst["annotations"] if a["category_id"] == 1}
        assert {a["id"] for a in kp["annotations"]} == persons
        for ann in kp["annotations"]:
            assert len(ann["keypoints"]) == 51 and ann["num_keypoints"] > 0
        image = {i["id"]: i for i in kp["images"]}
        for ann in kp["annotations"]:
            xs, ys, vs = ann["keypoints"][0::3], ann["keypoints"][1::3], ann["keypoints"][2::3]
            w, h = image[ann["image_id"]]["width"], image[ann["image_id"]]["height"]
            assert all(x < w and y < h for x, y, v in zip(xs, ys, vs, strict=True) if v > 0)


# -- the paper's ImageNet path with stand-in files ----------------------------------------------------
@pytest.mark.parametrize("backbone", ["resnet50", "resnet101", "resnext101_32x8d"])
def test_stand_in_imagenet_weights_load_through_torchvisions_cache_and_freeze_as_the_paper(
    backbone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "users-own-cache"))
    run = {"resnet50": "r50_c4", "resnet101": "r101_fpn", "resnext101_32x8d": "x101_fpn"}[backbone]
    cfg = resolve_run(run, "rehearsal")
    with imagenet_source(cfg, tmp_path):
        assert os.environ["TORCH_HOME"] == str(stand_in_torch_home(tmp_path))
        built = build_backbone(settings_from_config({**cfg, "model": {**cfg["model"], "num_classes": 81}}))
    assert os.environ["TORCH_HOME"] == str(tmp_path / "users-own-cache")  # restored
    assert not (tmp_path / "users-own-cache").exists()  # the user's cache is never written
    init = built.init
    assert (init.backbone_weights, init.norm, init.reason) == ("imagenet", "frozen_bn", None)
    assert init.frozen_stages == ("conv1", "bn1", "layer1")
    saved = torch.load(checkpoint_path(stand_in_torch_home(tmp_path), backbone), weights_only=True)
    params = dict(built.trunk.named_parameters())  # C4: res5 is the box head's, trained
    if built.res5 is not None:
        assert all(p.requires_grad for p in built.res5.parameters())
    for name, param in params.items():  # the stem and res2 fixed, res3 on trained (section 3.1)
        stage = name.removeprefix("body.").split(".")[0]
        assert param.requires_grad == (stage not in ("conv1", "layer1")), name
    loaded = params[("body." if cfg["model"]["arch"] == "fpn" else "") + "layer3.0.conv1.weight"]
    assert torch.equal(loaded.detach(), saved["layer3.0.conv1.weight"])
    norms = [m for m in built.trunk.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert norms and not any(isinstance(m, torch.nn.BatchNorm2d) for m in built.trunk.modules())
    assert torch.equal(norms[0].running_var, saved["bn1.running_var"])  # ImageNet statistics, frozen
    assert not torch.equal(saved["bn1.running_var"], torch.ones_like(saved["bn1.running_var"]))


def test_the_stand_in_file_is_written_once_and_named_as_torchvisions(tmp_path: Path) -> None:
    path = place_stand_in(tmp_path, "resnet50")
    assert path.name == "resnet50-0676ba61.pth" and path.parent == tmp_path / "hub" / "checkpoints"
    stamp = path.stat().st_mtime_ns
    assert place_stand_in(tmp_path, "resnet50") == path and path.stat().st_mtime_ns == stamp
    keys = torch.load(path, weights_only=True).keys()
    assert "fc.weight" in keys and not any(k.endswith("num_batches_tracked") for k in keys)


def test_a_scale_without_stand_ins_leaves_torch_home_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TORCH_HOME", raising=False)
    with imagenet_source(resolve_run("r50_fpn", "paper"), tmp_path):
        assert "TORCH_HOME" not in os.environ
    assert not stand_in_torch_home(tmp_path).exists()


# -- paper_short: the paper's settings, Detectron's 1x schedule, Table 2b-2e ---------------------------
@pytest.mark.parametrize("run", ["r50_c4", "r50_c4_softmax", "r50_c5_roialign", "r50_fpn_mlp3"])
def test_paper_short_is_the_paper_scale_on_a_1x_schedule(run: str) -> None:
    paper, short = resolve_run(run, "paper"), resolve_run(run, "paper_short")
    for key in ("model", "input", "dataset"):
        assert short[key] == paper[key], key
    changed = {k for k in paper["schedule"] if short["schedule"][k] != paper["schedule"][k]}
    assert changed == {"iterations", "lr_decay_at"}
    assert (short["schedule"]["iterations"], short["schedule"]["lr_decay_at"]) == (90000, [60000, 80000])
    assert table_names(REG, "paper_short") == ["table2b", "table2c", "table2d", "table2e"]
