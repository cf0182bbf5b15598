"""The experiment registry: schema, cross-references, the papers' values, scales and run sharing."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from segbench.errors import InputError
from segbench.registry import (
    artifacts,
    load_registry,
    resolve_run,
    runs_for_tables,
    seeds_for_run,
    validate_registry,
)

EXPECTED_TABLES = {
    "table1",
    "table2a",
    "table2b",
    "table2c",
    "table2d",
    "table2e",
    "class_agnostic",
    "roialign_fpn",
    "table3",
    "table4",
    "table5",
    "table6",
    "unet_table1",
    "unet_table2",
}


@pytest.fixture(scope="module")
def registry() -> dict:
    return load_registry()


def test_every_paper_table_is_registered(registry):
    paper_tables = {name for name, t in registry["tables"].items() if t.get("in_paper", True)}
    assert paper_tables == EXPECTED_TABLES
    # our error-vs-budget study, the same-budget torchvision reference, Table 2's ablations on the EM cells
    assert set(registry["tables"]) - paper_tables == {"unet_budget", "reference_torchvision", "em_maskrcnn"}
    assert artifacts(registry)["table2"] == ["table2a", "table2b", "table2c", "table2d", "table2e"]
    assert set(artifacts(registry)["all"]) == set(registry["tables"])


def test_paper_values_match_the_transcription(registry, shared_data: Path):
    """Every row's paper values equal ../shared/reference/paper_tables.yaml, row by row."""
    reference = yaml.safe_load((shared_data.parent / "reference" / "paper_tables.yaml").read_text())
    names = {"unet_table1": ("unet", "table1"), "unet_table2": ("unet", "table2")}
    for table_name, table in registry["tables"].items():
        if not table.get("in_paper", True):
            continue
        paper, key = names.get(table_name, ("maskrcnn", table_name))
        ref = reference[paper]["tables"][key]
        # the paper's columns first, then the recall columns (COCO AR) the paper does not print; a column
        # may add the measure it holds to the paper's name (unet_table2: the paper's "IOU" is our SEG,
        # "PhC-U373 SEG"), and our pixel IoU follows them there
        printed = len(ref["columns"])
        assert [c.split(" ")[0] for c in table["columns"][:printed]] == ref["columns"], table_name
        extra = table["columns"][printed:]
        assert all(c.startswith("AR") or c.endswith(" IoU") for c in extra), (table_name, extra)
        assert all(row["paper_values"][printed:] == [None] * len(extra) for row in table["rows"]), table_name
        ours = [
            row["paper_values"][:printed]
            for row in table["rows"]
            if any(v is not None for v in row["paper_values"])
        ]
        theirs = [row["values"] for row in ref["rows"]]
        assert ours == theirs, table_name
        assert registry["papers"][paper]["citation"] == reference[paper]["citation"]


def test_maskrcnn_tables_show_box_and_mask_recall(registry):
    """Every Mask R-CNN table with mask or box AP columns also shows AR100 (mask: AR, box: ARbb) from the
    runs' metrics.json; the paper prints none, so its values are null."""
    for name, table in registry["tables"].items():
        if table["paper"] != "maskrcnn" or "difference" in str(table["rows"]):
            continue
        keys = set(table["metrics"].values())
        if any(k.startswith("segm.AP") for k in keys):
            assert "segm.AR100" in keys, name
        if any(k.startswith("bbox.AP") for k in keys) or name.startswith("table2"):
            assert "bbox.AR100" in keys, name
        if any(k.startswith("keypoints.AP") for k in keys):
            assert "keypoints.AR" in keys, name
        for column, key in table["metrics"].items():
            if ".AR" in key:
                assert column.startswith("AR"), (name, column)
                index = table["columns"].index(column)
                assert all(row["paper_values"][index] is None for row in table["rows"]), (name, column)


def test_shared_configs_are_one_run(registry):
    """ResNet-50-C4 sigmoid/RoIAlign-avg is a row of 2a, 2b, 2c and class_agnostic, trained once."""
    users = [
        name for name, t in registry["tables"].items() if any(r.get("run") == "r50_c4" for r in t["rows"])
    ]
    assert set(users) == {"table2a", "table2b", "table2c", "class_agnostic"}
    instances = runs_for_tables(artifacts(registry)["table2"], "mini", registry)
    ids = [rs.run_id for rs in instances]
    assert len(ids) == len(set(ids))
    assert ids.count("r50_c4-seed0") == 1
    assert seeds_for_run("r50_c4", "mini", registry) == [0, 1, 2]  # 2b-2e ask for 3 seeds
    assert seeds_for_run("r101_c4", "mini", registry) == [0, 1, 2]  # 2a asks for 3 seeds too
    assert seeds_for_run("r101_fpn_faster", "mini", registry) == [0, 1, 2]  # Table 3 asks for 3 seeds
    assert seeds_for_run("r101_fpn_faster", "paper", registry) == [0]  # one seed at the paper scale


def test_resolve_run_overlays_the_scale(registry):
    smoke = resolve_run("r50_fpn_mlp2", "smoke", 1, registry)
    paper = resolve_run("r50_fpn_mlp2", "paper", 0, registry)
    assert smoke["run_id"] == "r50_fpn_mlp2-seed1"
    assert smoke["model"]["mask_head"] == paper["model"]["mask_head"] == "mlp2"
    assert smoke["dataset"]["name"] == "shapes_smoke" and paper["dataset"]["name"] == "coco2017"
    assert paper["input"]["min_size"] == 800 and paper["schedule"]["iterations"] == 160000
    assert smoke["schedule"]["iterations"] < 10


def test_a_dataset_overlay_reaches_only_the_runs_on_that_dataset(registry):
    """``by_dataset`` (mini: the person-keypoint runs' input and schedule) applies to every run on its
    logical dataset, after the family's and the architecture's keys, and leaves the other runs' configs
    (so their config hashes) exactly as they were without it."""
    from segbench.provenance import config_hash

    reg = copy.deepcopy(registry)
    mini = reg["scales"]["mini"]["families"]["maskrcnn"]
    mini["by_dataset"] = {
        "coco_person_keypoints": {
            "input": {"min_size": 256, "max_size": 256},
            "schedule": {"iterations": 2000, "lr_decay_at": [1600]},
        }
    }
    for run in ("r50_fpn_person_faster", "r50_fpn_person_mask", "r50_fpn_person_kp"):
        cfg = resolve_run(run, "mini", 0, reg)
        assert cfg["input"] == {**mini["input"], "min_size": 256, "max_size": 256}
        assert cfg["schedule"]["iterations"] == 2000 and cfg["schedule"]["lr_decay_at"] == [1600]
        assert cfg["schedule"]["base_lr"] == mini["schedule"]["base_lr"]  # the family's other keys stay

    without = copy.deepcopy(reg)
    del without["scales"]["mini"]["families"]["maskrcnn"]["by_dataset"]
    for run in ("r50_fpn", "r50_c4", "r50_c5_roialign"):
        assert config_hash(resolve_run(run, "mini", 0, reg)) == config_hash(
            resolve_run(run, "mini", 0, without)
        )
    assert resolve_run("r50_fpn_person_kp", "mini", 0, without)["input"] == mini["input"]


def test_a_backbone_overlay_reaches_only_the_runs_of_that_backbone(registry):
    """``by_backbone`` (mini: ResNet-101 with a longer warm-up) sets the schedule keys of every run of its
    backbone and leaves the other runs' config hashes as they were without it."""
    from segbench.provenance import config_hash

    reg = copy.deepcopy(registry)
    mini = reg["scales"]["mini"]["families"]["maskrcnn"]
    mini["by_backbone"] = {"resnet101": {"schedule": {"base_lr": 0.015}}}
    for run in ("r101_c4", "r101_fpn", "r101_fpn_faster"):
        cfg = resolve_run(run, "mini", 0, reg)
        assert cfg["schedule"]["base_lr"] == 0.015
        assert cfg["schedule"]["iterations"] == mini["schedule"]["iterations"]
    without = copy.deepcopy(reg)
    del without["scales"]["mini"]["families"]["maskrcnn"]["by_backbone"]
    for run in ("r50_fpn", "x101_fpn", "r50_fpn_person_kp"):
        assert config_hash(resolve_run(run, "mini", 0, reg)) == config_hash(
            resolve_run(run, "mini", 0, without)
        )


def test_a_task_overlay_reaches_only_the_runs_with_that_task(registry):
    """``by_task`` (paper: the keypoint schedule of section 5) sets the schedule keys of every run with the
    task, after ``by_backbone`` and before ``by_dataset``, and leaves the other runs' hashes as they were."""
    from segbench.provenance import config_hash
    from segbench.schedule import effective_schedule

    paper = resolve_run("r50_fpn_person_kp", "paper", 0, registry)
    assert effective_schedule(paper, replicas=8, gpus=8).train_scales == [640, 800]
    assert paper["schedule"]["iterations"] == 90000 and paper["schedule"]["lr_decay_at"] == [60000, 80000]
    for run in ("r50_fpn", "r50_fpn_person_mask"):  # no keypoint task: the 160k schedule, no jitter
        cfg = resolve_run(run, "paper", 0, registry)
        assert cfg["schedule"]["iterations"] == 160000 and "train_scales" not in cfg["schedule"]

    reg = copy.deepcopy(registry)
    mini = reg["scales"]["mini"]["families"]["maskrcnn"]
    mini["by_task"] = {"keypoint": {"schedule": {"iterations": 7, "base_lr": 0.5}}}
    kp = resolve_run("r50_fpn_person_kp", "mini", 0, reg)
    # by_dataset (the person runs' 2000 x 8 at lr 0.02) comes after by_task and wins where both set a key
    assert (
        kp["schedule"]["iterations"] == mini["by_dataset"]["coco_person_keypoints"]["schedule"]["iterations"]
    )
    assert kp["schedule"]["base_lr"] == mini["by_dataset"]["coco_person_keypoints"]["schedule"]["base_lr"]
    mini["by_task"] = {"keypoint": {"schedule": {"momentum": 0.5}}}
    assert resolve_run("r50_fpn_person_kp", "mini", 0, reg)["schedule"]["momentum"] == 0.5
    for run in ("r50_fpn", "x101_fpn", "r50_fpn_person_mask"):
        assert config_hash(resolve_run(run, "mini", 0, reg)) == config_hash(
            resolve_run(run, "mini", 0, registry)
        )


@pytest.mark.parametrize("jsonschema", [True, False])
@pytest.mark.parametrize(
    ("kind", "name", "known"),
    [
        ("by_backbone", "resnet42", "resnet101"),
        ("by_task", "keypoint", None),
        ("by_dataset", "cocoa", "coco"),
    ],
)
def test_an_override_for_nothing_is_one_line(registry, monkeypatch, jsonschema, kind, name, known):
    """A ``by_*`` key no run of the family has (a misspelling) would change no run: refused, naming it."""
    from segbench.registry import validate

    monkeypatch.setattr(validate, "available", lambda package: jsonschema)
    bad = copy.deepcopy(registry)
    family = "unet" if kind == "by_task" else "maskrcnn"  # no U-Net run has tasks
    bad["scales"]["mini"]["families"][family][kind] = {name: {"schedule": {"iterations": 1}}}
    where = f"entry scales/mini/families/{family}/{kind}/{name}: "
    with pytest.raises(InputError, match=where) as info:
        validate_registry(bad, source="experiments.yaml")
    assert "\n" not in str(info.value) and (known is None or known in str(info.value))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: r["runs"]["r50_c4"]["model"].__setitem__("backbone", "resnet42"),
            "runs/r50_c4/model/backbone",
        ),
        (lambda r: r["runs"]["r50_c4"]["model"].__setitem__("mask_lossy", "sigmoid"), "runs/r50_c4/model"),
        (
            lambda r: r["tables"]["table2b"]["rows"][0].__setitem__("run", "no_such_run"),
            "tables/table2b/rows/0",
        ),
        (lambda r: r["tables"]["table2c"]["rows"][1]["paper_values"].pop(), "tables/table2c/rows/1"),
        (
            lambda r: r["tables"]["table2b"]["directions"][0].__setitem__("better", "nope"),
            "tables/table2b/directions/0",
        ),
        (lambda r: r["tables"]["table1"]["seeds"].pop("mini"), "tables/table1/seeds"),
        (lambda r: r["scales"]["mini"]["datasets"].pop("coco"), "scales/mini/datasets"),
        (
            lambda r: r["tables"]["table6"].__setitem__("metrics", {"APkp": "keypoints.AP"}),
            "tables/table6/metrics",
        ),
        (  # a score names a metric path of a form the evaluation does not record
            lambda r: r["tables"]["unet_table1"]["scores"].__setitem__("V_rand", "isbi.v_rand"),
            "tables/unet_table1/scores/V_rand",
        ),
        (  # a score under a column's name
            lambda r: r["tables"]["unet_table1"]["scores"].__setitem__("rand_error", "isbi.thinned.v_rand"),
            "tables/unet_table1/scores/rand_error",
        ),
    ],
)
def test_bad_entries_are_named(registry, mutate, message):
    bad = copy.deepcopy(registry)
    mutate(bad)
    with pytest.raises(InputError, match="entry " + message) as info:
        validate_registry(bad, source="experiments.yaml")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("jsonschema", [True, False])
def test_a_score_of_an_unknown_metric_path_is_one_line(registry, monkeypatch, jsonschema):
    """``scores:`` accept only the paths of validate.SCORE_METRICS, with or without jsonschema (the schema's
    enum and the cross-reference check), and those are the scores isbi_thinned records."""
    from segbench.metrics.isbi_thinned import SCORES
    from segbench.registry import validate

    assert validate.SCORE_METRICS == tuple(f"isbi.thinned.{s}" for s in SCORES)
    assert set(registry["tables"]["unet_table1"]["scores"].values()) == set(validate.SCORE_METRICS)
    monkeypatch.setattr(validate, "available", lambda name: jsonschema)
    bad = copy.deepcopy(registry)
    bad["tables"]["unet_budget"]["scores"]["V_info"] = "isbi.thinned.v_info.mean"
    with pytest.raises(InputError, match="entry tables/unet_budget/scores/V_info: ") as info:
        validate_registry(bad, source="experiments.yaml")
    assert "\n" not in str(info.value) and "isbi.thinned.v_info.mean" in str(info.value)


def test_broken_yaml_file_names_the_line(tmp_path, monkeypatch):
    path = tmp_path / "experiments.yaml"
    path.write_text("papers: {maskrcnn: [\n")
    with pytest.raises(InputError, match=str(path)):
        load_registry(path)


def test_unknown_scale_and_run_are_refused(registry):
    with pytest.raises(InputError, match="unknown scale 'huge'"):
        resolve_run("r50_c4", "huge", 0, registry)
    with pytest.raises(InputError, match="unknown run 'r51_c4'"):
        resolve_run("r51_c4", "mini", 0, registry)


def test_a_family_without_an_engine_is_not_implemented_yet():
    from segbench.engine import engine_for
    from segbench.errors import NotImplementedYet
    from segbench.families import FAMILIES, FamilySpec, register_family

    with pytest.raises(InputError, match="unknown model family 'detr'; known: maskrcnn"):
        engine_for("detr")
    register_family(FamilySpec("detr", engine="segbench.engine.detr", builder="segbench.models.detr:build"))
    try:
        with pytest.raises(NotImplementedYet, match="not implemented yet: engine for model family 'detr'"):
            engine_for("detr")
    finally:
        FAMILIES.unregister("detr")


# The claims registered per table (directions): Mask R-CNN Tables 1-6, class-agnostic, ours vs torchvision.
EXPECTED_CLAIMS = {
    "table1": 2,
    "table2a": 5,
    "table2b": 1,
    "table2c": 7,
    "table2d": 4,
    "table2e": 2,
    "class_agnostic": 1,
    "table3": 5,
    "table4": 2,
    "table5": 7,
    "table6": 1,
    "reference_torchvision": 2,
    "em_maskrcnn": 4,
    "unet_table1": 6,
    "unet_budget": 10,
    "unet_table2": 2,
}


def test_every_claim_is_registered_and_worded_as_the_paper_words_it(registry):
    tables = registry["tables"]
    assert {
        n: len(t.get("directions", [])) for n, t in tables.items() if t.get("directions")
    } == EXPECTED_CLAIMS
    for name, table in tables.items():
        if table["paper"] != "maskrcnn" or not table.get("in_paper", True):
            continue
        rows = {r["id"]: r["paper_values"] for r in table["rows"]}
        for d in table.get("directions", []):
            col = table["columns"].index(d["metric"])
            better, worse = rows[d["better"]][col], rows[d["worse"]][col]
            gap = better - worse
            kind = d.get("kind", "superiority")
            # a gain the paper reports, however small, is a superiority claim with the paper's own sign
            assert gap > 0 or kind == "equivalence", (name, d)
            # non-inferiority is ours alone (the torchvision sanity check), never a paper's claim
            assert kind in ("superiority", "equivalence"), (name, d)
            if kind == "equivalence":
                assert abs(gap) <= d["margin"], (name, d)  # the paper's values meet their own claim
    # Table 2a's claims are judged over 3 seeds at mini like the other ablations
    assert tables["table2a"]["seeds"]["mini"] == 3
