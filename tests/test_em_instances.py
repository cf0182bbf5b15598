"""Mask R-CNN on the ISBI 2012 cells (issue #38 B): the instance derivation (4-connected regions, the
N-pixel drop, crop re-labelling, RLE, at most 100 instances per crop), its folds (the U-Net's), the
registry's em_maskrcnn table and the real_cpu runs' use of mini's pretrained backbones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from segbench.data.biomedical import LabelledImage, held_out_slices, held_out_split
from segbench.data.derived import isbi_instances as derivation
from segbench.errors import InputError
from segbench.paths import REPO_ROOT, run_pretrained_weights, stored_weights
from segbench.provenance import config_hash
from segbench.registry import load_registry, resolve_run, runs_for_tables, table_names

RUNS = ("em_r50_c4", "em_r50_c4_roipool", "em_r50_fpn", "em_r50_fpn_mlp2")


def write_stack(root: Path, labels: np.ndarray) -> dict[str, Path]:
    """An ISBI 2012 pair of files (ImageJ ZYX stacks) with ``labels`` and a volume that encodes positions."""
    root.mkdir(parents=True, exist_ok=True)
    volume = (np.arange(labels.size) % 251).astype(np.uint8).reshape(labels.shape)
    paths = {"volume": root / "train-volume.tif", "labels": root / "train-labels.tif"}
    tifffile.imwrite(paths["volume"], volume, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(paths["labels"], labels, imagej=True, metadata={"axes": "ZYX"})
    return paths


def hand_slice() -> np.ndarray:
    """16 x 16, membrane 0 everywhere but: two 5 x 5 cells touching only at a corner (rows 0-4 cols 0-4
    and rows 5-9 cols 5-9), a 2 x 2 speck (4 px), and a 3 x 12 bar across the crop border at column 8."""
    labels = np.zeros((16, 16), np.uint8)
    labels[0:5, 0:5] = 255
    labels[5:10, 5:10] = 255
    labels[13:15, 0:2] = 255
    labels[12:15, 3:15] = 255
    return labels


def test_regions_are_4_connected_and_small_ones_dropped():
    labels = hand_slice()
    instances, dropped = derivation.cell_instances(labels, min_pixels=5)
    # the corner-touching cells stay two (8-connectivity would merge them), the speck is dropped
    assert instances.max() == 3 and dropped == 1
    assert len(np.unique(instances[0:10, 0:10])) == 3  # background + 2 cells
    assert (instances[13:15, 0:2] == 0).all()
    from scipy import ndimage

    assert ndimage.label(labels == 255, structure=np.ones((3, 3)))[1] == 3  # 8-connected: cells merged
    assert derivation.cell_instances(labels, min_pixels=1)[1] == 0


def test_crops_relabel_instances_and_rle_round_trips(tmp_path: Path):
    from pycocotools import mask as mask_utils

    labels = np.stack([hand_slice(), np.zeros((16, 16), np.uint8)])
    labels[1, 2:6, 2:14] = 255  # slice 1: one 4 x 12 bar across the vertical crop border
    source = write_stack(tmp_path / "src", labels)
    out = tmp_path / "out"
    derivation.derive(source, out, {"crop": 8, "min_pixels": 5, "folds": 2})
    data = json.loads((out / "annotations" / "instances_fold0_train.json").read_text())
    held = json.loads((out / "annotations" / "instances_fold0_val.json").read_text())
    assert {img["slice"] for img in data["images"]} == {1} and {img["slice"] for img in held["images"]} == {0}
    assert data["categories"] == [{"id": 1, "name": "cell", "supercategory": "cell"}]
    # slice 1's bar is cut by the crop border at column 8 into two crop-local instances of 4 x 6 each
    assert sorted(a["area"] for a in data["annotations"]) == [24.0, 24.0]
    # slice 0: the 5 x 5 cell (25 px) and the other cell cut by both crop borders into 9, 6, 6 and 4 px (the
    # last dropped); the bar cut at column 8 into 15 and 21 px; the 4-px speck dropped
    by_origin = {tuple(img["origin"]): img["id"] for img in held["images"]}
    areas = {
        o: sorted(a["area"] for a in held["annotations"] if a["image_id"] == i) for o, i in by_origin.items()
    }
    assert areas == {(0, 0): [9.0, 25.0], (0, 8): [6.0], (8, 0): [6.0, 15.0], (8, 8): [21.0]}
    summary = json.loads((out / "derivation.json").read_text())
    assert summary["crops"] == 8 and summary["instances_per_crop"]["max"] <= derivation.MAX_DETS
    for ann in held["annotations"] + data["annotations"]:  # RLE decodes to the crop-local mask it describes
        image = next(i for i in held["images"] + data["images"] if i["id"] == ann["image_id"])
        mask = mask_utils.decode(ann["segmentation"])
        assert mask.shape == (8, 8) and int(mask.sum()) == ann["area"] >= 5
        y, x = image["origin"]
        assert (labels[image["slice"], y : y + 8, x : x + 8][mask > 0] == 255).all()
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    from PIL import Image

    crop = np.asarray(Image.open(out / "images" / image["file_name"]))
    assert crop.shape == (8, 8)  # grey; the COCO loader converts to RGB


def test_a_crop_over_coco_max_dets_is_refused(tmp_path: Path):
    labels = np.zeros((1, 24, 24), np.uint8)
    labels[0, ::2, ::2] = 255  # 144 one-pixel cells
    source = write_stack(tmp_path / "src", labels)
    with pytest.raises(InputError, match="more than COCO's maxDets 100") as info:
        derivation.derive(source, tmp_path / "out", {"crop": 24, "min_pixels": 1, "folds": 1})
    assert "\n" not in str(info.value)


def test_folds_hold_out_the_unet_folds_slices():
    """Fold k of the crops holds out the slices the U-Net's fold k holds out; no slice on both sides."""
    images = [
        LabelledImage(f"slice{i:02d}", np.zeros((2, 2)), np.zeros((2, 2), np.int32), Path("x"), i)
        for i in range(30)
    ]
    for fold in range(5):
        lo, hi = held_out_slices(30, fold, 5)
        split = held_out_split("isbi2012", [images], fold=fold, folds=5)
        assert (
            [img.index for img in split.held_out]
            == list(range(lo, hi))
            == list(range(6 * fold, 6 * fold + 6))
        )
        assert not {img.index for img in split.train} & set(range(lo, hi))


def test_derived_fold_files_split_slices_disjointly(tmp_path: Path):
    labels = np.zeros((5, 16, 16), np.uint8)
    labels[:, 2:12, 2:12] = 255
    derivation.derive(
        write_stack(tmp_path / "src", labels), tmp_path / "out", {"crop": 16, "min_pixels": 5, "folds": 5}
    )
    for fold in range(5):
        train, val = (
            json.loads((tmp_path / "out" / "annotations" / f"instances_fold{fold}_{s}.json").read_text())
            for s in ("train", "val")
        )
        train_slices, val_slices = ({img["slice"] for img in d["images"]} for d in (train, val))
        assert (
            val_slices == {fold}
            and not train_slices & val_slices
            and train_slices | val_slices == set(range(5))
        )
        assert train["info"]["segbench"]["held_out_slices"] == [fold]


def test_prepare_records_the_source_hash_and_the_engine_reads_the_fold(tmp_path: Path):
    from segbench.data import dataset_identity, prepare
    from segbench.engine.maskrcnn import split_paths

    prepare("em_smoke_instances", tmp_path)
    identity = dataset_identity("em_smoke_instances", tmp_path)
    source = dataset_identity("em_smoke", tmp_path)
    assert identity["derived_from"] == {"name": "em_smoke", "sha256": source["sha256"]}
    cfg = resolve_run("em_r50_c4", "smoke", 0)
    images, annotations = split_paths(cfg, tmp_path, "val")
    assert (
        annotations.name == "instances_fold3_val.json" and images.is_dir()
    )  # em_smoke: 4 slices, slice 3 held out
    cfg = resolve_run("em_r50_c4", "real_cpu", 2)
    assert cfg["split"] == {"folds": 5, "fold": 2}
    with pytest.raises(InputError, match="isbi2012_instances"):  # the real stack is not in tmp_path
        split_paths(cfg, tmp_path, "train")
    cfg["dataset"]["layout"].pop("fold2_train")
    with pytest.raises(InputError, match="no split 'fold2_train'"):
        split_paths(cfg, tmp_path, "train")


def test_the_table_and_its_runs_in_the_registry():
    reg = load_registry()
    assert "em_maskrcnn" in table_names(reg, "real_cpu") and "em_maskrcnn" in table_names(reg, "smoke")
    table = reg["tables"]["em_maskrcnn"]
    assert table["in_paper"] is False and table["seeds"]["real_cpu"] == 5
    assert {d["source"] for d in table["directions"]} == {"paper"}
    assert {rs.run for rs in runs_for_tables(["em_maskrcnn"], "real_cpu", reg)} == set(RUNS)
    assert len(runs_for_tables(["em_maskrcnn"], "real_cpu", reg)) == 20
    for scale, dataset in (
        ("smoke", "em_smoke_instances"),
        ("mini", "em_mini_instances"),
        ("real_cpu", "isbi2012_instances"),
    ):
        assert resolve_run("em_r50_fpn", scale, 0)["dataset"]["name"] == dataset


@pytest.mark.parametrize("run", RUNS)
def test_real_cpu_runs_start_from_minis_committed_backbones(run: str, tmp_path: Path):
    cfg = resolve_run(run, "real_cpu", 0)
    mini = resolve_run(run.removeprefix("em_"), "mini", 0)
    assert cfg["pretraining"] == mini["pretraining"] and cfg["pretrained_from"] == "mini"
    assert cfg["model"] == mini["model"] and cfg["input"] == mini["input"]
    path = run_pretrained_weights(cfg, REPO_ROOT / "results" / "real_cpu" / "runs" / cfg["run_id"])
    assert (
        path
        == REPO_ROOT / "results" / "mini" / "pretrained" / f"resnet50-{config_hash(cfg['pretraining'])}.pt"
    )
    assert stored_weights(path).is_file() and path.with_suffix(".json").is_file()
    assert "pretrained_from" not in resolve_run(run, "smoke", 0)


def test_pretrained_from_must_match_the_other_scales_pretraining():
    import copy

    from segbench.registry.validate import _check_pretrained_from

    reg = copy.deepcopy(load_registry())
    reg["scales"]["real_cpu"]["families"]["maskrcnn"]["pretraining"] = {"schedule": {"iterations": 1}}

    def fail(where: str, message: str) -> None:
        raise InputError(f"{where}: {message}")

    with pytest.raises(InputError, match="scales/real_cpu/families/maskrcnn/pretraining"):
        _check_pretrained_from(reg, fail)


def test_the_real_stack_derivation_figures(shared_data: Path, tmp_path: Path):
    """The figures docs/real_data_cpu.md and datasets.yaml state, on the real ISBI 2012 stack."""
    source = shared_data / "isbi2012"
    if not (source / "train-labels.tif").is_file():
        pytest.skip("the real ISBI 2012 stack is absent from the shared data")
    paths = {"volume": source / "train-volume.tif", "labels": source / "train-labels.tif"}
    derivation.derive(paths, tmp_path, {"crop": 128, "min_pixels": 20, "folds": 5})
    summary = json.loads((tmp_path / "derivation.json").read_text())
    assert summary == {
        "slices": 30,
        "crops": 480,
        "crop": 128,
        "min_pixels": 20,
        "instances": 5119,
        "dropped_regions": 445,
        "instances_per_crop": {"min": 2, "median": 11.0, "max": 23},
    }
    val = json.loads((tmp_path / "annotations" / "instances_fold1_val.json").read_text())
    assert {img["slice"] for img in val["images"]} == set(range(6, 12)) and len(val["images"]) == 96


def test_smoke_run_trains_and_evaluates_on_the_derived_crops(tmp_path: Path):
    from segbench.engine.runner import evaluate_run, train_run

    cfg = resolve_run("em_r50_fpn", "smoke", 0)
    cfg["schedule"].update(iterations=2, checkpoint_every=2)
    train_run(cfg, tmp_path / "results" / "smoke" / "runs" / cfg["run_id"], tmp_path / "data")
    record = evaluate_run(cfg, tmp_path / "results" / "smoke" / "runs" / cfg["run_id"], tmp_path / "data")
    assert 0.0 <= record["metrics"]["segm"]["AP"] <= 1.0
    assert record["provenance"]["dataset"]["derived_from"]["name"] == "em_smoke"
    from segbench.reporting.figures import FigureContext, render_figure

    ctx = FigureContext("smoke", tmp_path / "results", tmp_path / "figures", tmp_path / "data")
    result = render_figure("em_maskrcnn_predictions", ctx)
    assert result.status in ("ok", "skipped"), result.note  # skipped: a 2-iteration model may detect nothing
    if result.status == "skipped":
        assert "segm predictions" in result.note
    else:
        assert (tmp_path / "figures" / "em_maskrcnn_predictions.png").is_file()


def test_the_predictions_figure_reads_the_runs_fold_from_its_config_json(tmp_path: Path, monkeypatch):
    """A run's config.json holds its resolved config under "config": the figure must read the fold there,
    so a cross-validation run is drawn on its own held-out crops (its predictions' image ids), not on the
    default split's (found on the real_cpu page: fold 0's predictions were looked up in fold 4's crops)."""
    import segbench.data.registry as data_registry
    from segbench.reporting.figures.base import FigureContext
    from segbench.reporting.figures.predictions import val_split

    splits = {}
    for split, first in (("val", 385), ("fold0_val", 1), ("fold2_val", 193)):
        path = tmp_path / f"{split}.json"
        path.write_text(
            json.dumps({"images": [{"id": first + k, "file_name": f"{k}.png"} for k in range(3)]})
        )
        splits[split] = {"images": tmp_path, "annotations": path}
    monkeypatch.setattr(data_registry, "dataset_paths", lambda name, root: splits)
    run_dir = tmp_path / "results" / "real_cpu" / "runs" / "em_r50_c4-seed2"
    run_dir.mkdir(parents=True)
    cfg = resolve_run("em_r50_c4", "real_cpu", 2)
    (run_dir / "config.json").write_text(json.dumps({"config": cfg, "config_hash": "x"}))
    ctx = FigureContext("real_cpu", tmp_path / "results", tmp_path / "out", tmp_path)
    _, coco = val_split(ctx, run_dir)
    assert [image["id"] for image in coco["images"]] == [193, 194, 195]
