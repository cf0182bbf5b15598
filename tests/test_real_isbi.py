"""The real-data CPU scale (real_cpu): 5-fold cross-validation over the ISBI 2012 training stack, tables
defined at some scales only, pooled errors, the equivalence claim, and a real-data smoke run."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import tifffile

from segbench.data.biomedical import LabelledImage, held_out_split
from segbench.engine.runner import evaluate_run, train_run
from segbench.errors import InputError
from segbench.io import write_json_atomic
from segbench.metrics.isbi import isbi_metrics
from segbench.metrics.isbi_pooled import isbi_metrics_with_counts, pooled_isbi_metrics
from segbench.provenance import config_hash
from segbench.registry import (
    load_registry,
    resolve_run,
    runs_for_tables,
    seeds_for_run,
    table_names,
    validate_registry,
)
from segbench.tables.assemble import assemble_table
from segbench.tables.render import to_markdown

SCALE = "real_cpu"


@pytest.fixture(scope="module")
def registry() -> dict:
    return load_registry()


def fake_stack(n: int = 30) -> list[LabelledImage]:
    return [
        LabelledImage(
            f"slice{i:02d}", np.zeros((4, 4), np.float32), np.ones((4, 4), np.int32), Path("labels.tif"), i
        )
        for i in range(n)
    ]


def test_the_five_folds_hold_out_every_slice_exactly_once(registry):
    images = fake_stack()
    held: list[str] = []
    for seed in seeds_for_run("unet_isbi", SCALE, registry):
        cfg = resolve_run("unet_isbi", SCALE, seed, registry)
        assert cfg["split"] == {"folds": 5, "fold": seed}  # seed k = fold k
        split = held_out_split("isbi2012", [images], **cfg["split"])
        train, out = {img.name for img in split.train}, [img.name for img in split.held_out]
        assert len(out) == 6 and len(train) == 24 and not train & set(out)
        assert out == [f"slice{i:02d}" for i in range(6 * seed, 6 * seed + 6)]  # contiguous blocks
        held += out
    assert sorted(held) == [img.name for img in images]  # each of the 30 slices scored once


def test_every_family_gets_the_same_fold_and_other_scales_keep_their_configs(registry):
    for run in ("unet_isbi", "swcnn_isbi", "threshold_isbi"):
        cfg = resolve_run(run, SCALE, 3, registry)
        assert cfg["split"]["fold"] == 3 and cfg["dataset"]["name"] == "isbi2012"
        assert "split" not in resolve_run(run, "mini", 0, registry)  # mini/smoke hashes unchanged
    with pytest.raises(InputError, match="seed k is fold k"):
        resolve_run("unet_isbi", SCALE, 5, registry)


def test_only_the_tables_on_isbi_are_defined_at_real_cpu(registry):
    assert table_names(registry, SCALE) == ["unet_table1", "unet_budget", "em_maskrcnn"]
    assert "table2a" in table_names(registry, "mini")
    assert seeds_for_run("r50_c4", SCALE, registry) == []
    ids = [rs.run_id for rs in runs_for_tables(["unet_table1"], SCALE, registry)]
    assert len(ids) == 15 and "swcnn_isbi-seed4" in ids
    with pytest.raises(InputError, match="table 'table2a' is not defined at scale 'real_cpu'") as info:
        runs_for_tables(["table2a"], SCALE, registry)
    assert "\n" not in str(info.value)
    description = registry["scales"][SCALE]["description"]
    assert description.startswith("Real data, held-out training slices (5-fold CV), not the secret test set")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["tables"]["unet_table1"]["seeds"].__setitem__("huge", 1), "tables/unet_table1/seeds"),
        (
            lambda r: r["tables"]["unet_table1"]["seeds"].__setitem__("real_cpu", 3),
            "tables/unet_table1/seeds/real_cpu",
        ),
        (lambda r: r["tables"]["table1"]["seeds"].__setitem__("real_cpu", 5), "scales/real_cpu/datasets"),
        (
            lambda r: r["tables"]["unet_table1"]["directions"][2].pop("margin"),
            "tables/unet_table1/directions/2",
        ),
        (
            lambda r: r["tables"]["unet_table1"]["directions"][0].__setitem__("source", "blog"),
            "tables/unet_table1/directions/0/source",
        ),
        (lambda r: r["scales"]["real_cpu"]["cross_validation"].__setitem__("folds", 1), "scales/real_cpu"),
    ],
)
def test_bad_scale_entries_are_named(registry, mutate, message):
    bad = copy.deepcopy(registry)
    mutate(bad)
    with pytest.raises(InputError, match="entry " + message):
        validate_registry(bad, source="experiments.yaml")


def test_pooled_errors_equal_the_errors_of_the_whole_stack():
    rng = np.random.default_rng(0)
    labels = np.where(rng.random((4, 24, 24)) > 0.3, 255, 0).astype(np.uint8)
    pred = np.clip(labels / 255.0 + rng.normal(0, 0.4, labels.shape), 0, 1).astype(np.float32)
    whole = isbi_metrics(pred, labels)
    parts = [isbi_metrics_with_counts(pred[a:b], labels[a:b]) for a, b in ((0, 2), (2, 4))]
    first = {k: v for k, v in parts[0].items() if k != "counts"}
    assert first == isbi_metrics(pred[:2], labels[:2])
    pooled = pooled_isbi_metrics([p["counts"] for p in parts])
    for key in ("warping_error", "rand_error", "pixel_error", "best_threshold", "slices", "pixels"):
        assert pooled[key] == whole[key], key


def test_per_slice_errors_are_each_slices_errors_at_the_stacks_thresholds_and_add_up_to_them():
    """per_slice: the fold's other keys unchanged; each slice's error is that of isbi_metrics on the slice
    alone at the stack's best threshold of the error; the slices' counts there sum to the stack's, so
    they reproduce its pixel and Rand errors, and its warping error is their pixel-weighted mean."""
    from segbench.metrics.isbi import THRESHOLDS, f_score

    rng = np.random.default_rng(2)
    labels = np.where(rng.random((3, 24, 24)) > 0.3, 255, 0).astype(np.uint8)
    pred = np.clip(labels / 255.0 + rng.normal(0, 0.5, labels.shape), 0, 1).astype(np.float32)
    plain = isbi_metrics_with_counts(pred, labels)
    full = isbi_metrics_with_counts(pred, labels, per_slice=True)
    assert {k: v for k, v in full.items() if k != "per_slice"} == plain
    slices, best = full["per_slice"], full["best_threshold"]
    assert len(slices) == 3 and all(s["pixels"] == 24 * 24 for s in slices)
    for z, entry in enumerate(slices):
        alone = isbi_metrics(pred[z], labels[z])["per_threshold"]
        for m in ("warping_error", "rand_error", "pixel_error"):
            assert entry[m] == alone[m][THRESHOLDS.index(best[m])], (z, m)
    at = {
        "pixel": "pixel_error",
        "rand": "rand_error",
        "warping": "warping_error",
        "mismatch": "warping_error",
    }
    for key, m in at.items():
        summed = np.sum([s["counts"][key] for s in slices], axis=0).tolist()
        assert summed == full["counts"][key][THRESHOLDS.index(best[m])], key
    tp, fp, fn = np.sum([s["counts"]["pixel"] for s in slices], axis=0)
    assert 1.0 - f_score(tp, fp, fn) == full["pixel_error"]
    weighted = sum(s["warping_error"] * s["pixels"] for s in slices) / full["pixels"]
    assert weighted == pytest.approx(full["warping_error"], abs=1e-15)


def test_pooled_thinned_scores_equal_the_scores_of_both_folds_slices_together(tmp_path):
    """pooled_value of isbi.thinned.<score>: the folds' sums added up, as thinned_metrics on all their
    slices; None where a fold was evaluated before the scores existed (no thinned block)."""
    from segbench.metrics.isbi_thinned import thinned_metrics, thinned_record, thinned_stats
    from segbench.tables.aggregate import pooled_value

    rng = np.random.default_rng(3)
    labels = np.where(rng.random((4, 24, 24)) > 0.3, 255, 0).astype(np.uint8)
    pred = np.clip(labels / 255.0 + rng.normal(0, 0.4, labels.shape), 0, 1).astype(np.float32)
    folds = [
        {"metrics": {"isbi": {"thinned": thinned_record(thinned_stats(pred[a:b], labels[a:b]))}}}
        for a, b in ((0, 2), (2, 4))
    ]
    whole = thinned_metrics(pred, labels)
    for score in ("v_rand", "v_info"):
        assert pooled_value(folds, f"isbi.thinned.{score}") == pytest.approx(whole[score], rel=1e-12)
    older = [folds[0], {"metrics": {"isbi": {"rand_error": 0.1}}}]
    assert pooled_value(older, "isbi.thinned.v_rand") is None
    # a block of the earlier pooled-contingency version (sums without slice counts) reads as missing too
    outdated = {"v_rand": 0.9, "v_info": 0.9, "sums": {"thresholds": [0.0], "n": [1.0], "nij2": [1.0]}}
    assert (
        pooled_value([folds[0], {"metrics": {"isbi": {"thinned": outdated}}}], "isbi.thinned.v_rand") is None
    )
    from segbench.tables.aggregate import score_value

    assert score_value({"isbi": {"thinned": outdated}}, "isbi.thinned.v_rand", tmp_path) is None


def fake_fold_metrics(root: Path, values: dict[str, list[float]], counts: dict) -> None:
    for rs in runs_for_tables(["unet_table1"], SCALE):
        v = values[rs.run][rs.seed]
        isbi = {"warping_error": v / 100, "rand_error": v, "pixel_error": v, "counts": counts}
        write_json_atomic(
            root / SCALE / "runs" / rs.run_id / "metrics.json",
            {
                "run_id": rs.run_id,
                "metrics": {"isbi": isbi},
                "config_hash": config_hash(resolve_run(rs.run, SCALE, rs.seed)),
                "provenance": {"git_commit": "abc", "wall_time_s": 1.0},
                "train_wall_time_s": 2.0,
            },
        )


def test_the_real_cpu_table_has_fold_statistics_pooled_errors_and_both_kinds_of_claims(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.where(rng.random((2, 16, 16)) > 0.3, 255, 0).astype(np.uint8)
    pred = np.clip(labels / 255.0 + rng.normal(0, 0.3, labels.shape), 0, 1).astype(np.float32)
    counts = isbi_metrics_with_counts(pred, labels)["counts"]
    values = {
        "unet_isbi": [0.050, 0.052, 0.054, 0.056, 0.058],
        "swcnn_isbi": [0.090, 0.091, 0.092, 0.093, 0.094],
        "threshold_isbi": [0.2] * 5,
    }
    fake_fold_metrics(tmp_path, values, counts)
    table = assemble_table("unet_table1", SCALE, tmp_path)
    rows = {r["id"]: r for r in table["rows"]}
    cell = rows["unet"]["values"]["rand_error"]
    assert cell["n"] == 5 and cell["mean"] == pytest.approx(0.054) and cell["std"] > 0
    assert cell["pooled"] == pytest.approx(pooled_isbi_metrics([counts] * 5)["rand_error"])
    assert rows["idsia"]["label"] == "sliding-window CNN (Ciresan et al. 2012, reduced width)"
    assert (
        rows["idsia"]["runs"] == ["swcnn_isbi"] and rows["threshold"]["label"] == "smoothed threshold (ours)"
    )
    by_claim = {(d["worse"], d["metric"]): d for d in table["directions"]}
    assert (
        by_claim[("idsia", "rand_error")]["verdict"] == "reproduced"
        and by_claim[("idsia", "rand_error")]["source"] == "paper"
    )
    equivalent = by_claim[("idsia", "pixel_error")]
    # 0.038 apart, tightly: the 90% interval lies outside ±0.01
    assert equivalent["kind"] == "equivalence" and equivalent["verdict"] == "contradicted"
    assert by_claim[("threshold", "pixel_error")]["source"] == "ours"
    md = to_markdown(table)
    assert "The paper's claims:" in md and "Against our baselines:" in md
    assert md.index("unet ≈ idsia") < md.index("Against our baselines:")
    assert "; pooled " in md and "5 folds" in md and "not the secret test set" in md
    with pytest.raises(InputError, match="not defined at scale"):
        assemble_table("table2a", SCALE, tmp_path)


def test_the_isbi_tables_show_the_thinned_scores_beside_the_errors_and_name_runs_evaluated_before(tmp_path):
    """unet_table1 at real_cpu: the u-net's folds carry isbi.thinned (fold k scored on slices 2k, 2k+1 of a
    stack), the other runs were evaluated before the scores existed. The scores' cells: mean ± std over the
    folds and the pooled score (thinned_metrics of all ten slices); the others' cells empty and named in one
    line; the columns, claims and lower_is_better as without scores."""
    import csv
    import io
    import json

    from segbench.formatting import SCORES_LEGEND
    from segbench.metrics.isbi_thinned import thinned_metrics, thinned_record, thinned_stats
    from segbench.tables.render import to_csv

    rng = np.random.default_rng(4)
    labels = np.where(rng.random((10, 16, 16)) > 0.3, 255, 0).astype(np.uint8)
    pred = np.clip(labels / 255.0 + rng.normal(0, 0.4, labels.shape), 0, 1).astype(np.float32)
    counts = isbi_metrics_with_counts(pred[:2], labels[:2])["counts"]
    values = {"unet_isbi": [0.05] * 5, "swcnn_isbi": [0.09] * 5, "threshold_isbi": [0.2] * 5}
    fake_fold_metrics(tmp_path, values, counts)
    before = assemble_table("unet_table1", SCALE, tmp_path)
    folds = []
    for k in range(5):
        path = tmp_path / SCALE / "runs" / f"unet_isbi-seed{k}" / "metrics.json"
        record = json.loads(path.read_text())
        record["metrics"]["isbi"]["thinned"] = thinned_record(
            thinned_stats(pred[2 * k : 2 * k + 2], labels[2 * k : 2 * k + 2])
        )
        folds.append(record["metrics"]["isbi"]["thinned"])
        write_json_atomic(path, record)
    table = assemble_table("unet_table1", SCALE, tmp_path)
    assert table["scores"] == {"V_rand": "isbi.thinned.v_rand", "V_info": "isbi.thinned.v_info"}
    assert table["columns"] == before["columns"] and table["lower_is_better"] is True
    assert table["directions"] == before["directions"]  # scores are never claimed
    rows = {r["id"]: r for r in table["rows"]}
    whole = thinned_metrics(pred, labels)
    for name, score in (("V_rand", "v_rand"), ("V_info", "v_info")):
        cell = rows["unet"]["scores"][name]
        per_fold = [f[score] for f in folds]
        assert cell["n"] == 5 and cell["per_seed"] == per_fold
        assert cell["mean"] == pytest.approx(np.mean(per_fold)) and cell["std"] == pytest.approx(
            np.std(per_fold, ddof=1)
        )
        assert cell["pooled"] == pytest.approx(whole[score], rel=1e-12)
        assert rows["idsia"]["scores"][name]["n"] == 0 and rows["idsia"]["scores"][name]["pooled"] is None
        assert rows["human"]["scores"][name]["n"] == 0  # a reference row: no run, no score
    assert table["scores_missing"] == sorted(
        f"{run}-seed{k}" for run in ("swcnn_isbi", "threshold_isbi") for k in range(5)
    )
    md = to_markdown(table)
    header = next(line for line in md.splitlines() if line.startswith("| row |"))
    assert header.endswith("| pixel_error | V_rand ↑ | V_info ↑ | converged |")
    unet_line = next(line for line in md.splitlines() if line.startswith("| u-net |"))
    assert f"; pooled {whole['v_rand']:.4g}" in unet_line and "(5)" in unet_line
    idsia_line = next(line for line in md.splitlines() if line.startswith("| sliding-window CNN"))
    assert idsia_line.split(" | ")[-3:-1] == ["-", "-"]
    assert SCORES_LEGEND in md
    missing = [line for line in md.splitlines() if "evaluated before the scores existed" in line]
    assert missing == [
        "Scores shown as -: swcnn_isbi, threshold_isbi (10 run instances) evaluated before the scores existed; "
        "re-run `segbench evaluate` on them."
    ]
    lines = list(csv.DictReader(io.StringIO(to_csv(table))))
    score_lines = [line for line in lines if line["column"] == "V_rand" and line["row"] == "unet"]
    assert len(score_lines) == 1 and float(score_lines[0]["pooled"]) == pytest.approx(
        whole["v_rand"], rel=1e-12
    )
    assert score_lines[0]["paper"] == score_lines[0]["delta"] == ""


def test_a_run_without_the_real_data_stops_naming_the_data_root_and_the_file(tmp_path):
    cfg = resolve_run("threshold_isbi", SCALE, 0)
    with pytest.raises(InputError) as info:
        train_run(cfg, tmp_path / "run", tmp_path / "empty_root")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "empty_root") in message
    assert "train-volume.tif" in message


def test_real_data_smoke_two_iterations_on_two_slices(shared_data: Path, tmp_path: Path):
    """All three Table 1 families on the first two real slices (cropped to 188 x 188): 2 folds of 1."""
    source = shared_data / "isbi2012"
    if not (source / "train-volume.tif").is_file():
        pytest.skip("the real ISBI 2012 stack is absent from the shared data")
    root = tmp_path / "data"
    (root / "isbi2012").mkdir(parents=True)
    for name in ("train-volume.tif", "train-labels.tif"):
        tifffile.imwrite(root / "isbi2012" / name, tifffile.imread(source / name)[:2, :188, :188])
    for run in ("unet_isbi", "swcnn_isbi", "threshold_isbi"):
        cfg = resolve_run(run, SCALE, 0)
        cfg["schedule"].update(iterations=2, checkpoint_every=2)
        cfg["model"]["test_time_rotations"] = 0
        if run == "unet_isbi":
            cfg["model"]["base_channels"] = 4
            cfg["input"]["tile"] = 188
        train_run(cfg, tmp_path / run, root)
        isbi = evaluate_run(cfg, tmp_path / run, root)["metrics"]["isbi"]
        assert isbi["held_out"] == ["slice00"] and isbi["slices"] == 1
        assert all(0 <= isbi[m] <= 1 for m in ("warping_error", "rand_error", "pixel_error"))


def test_the_test_stack_beside_the_training_stack_leaves_the_runs_dataset_identity_alone(tmp_path):
    """ISBI 2012's test stack (labels secret) is read only by a submission: placing test-volume.tif beside
    the training stack must not change the dataset hash every run records (segbench.data.formats
    outside_identity), while the MANIFEST still lists and checks it."""
    from segbench.data import dataset_identity, prepare
    from segbench.data.preparation import read_manifest

    folder = tmp_path / "isbi2012"
    folder.mkdir()
    stack = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    tifffile.imwrite(folder / "train-volume.tif", stack)
    tifffile.imwrite(folder / "train-labels.tif", (stack > 60).astype(np.uint8) * 255)
    prepare("isbi2012", tmp_path, progress=False)
    before = dataset_identity("isbi2012", tmp_path)
    tifffile.imwrite(folder / "test-volume.tif", stack[::-1])
    prepare("isbi2012", tmp_path, progress=False, force=True)
    assert "test-volume.tif" in read_manifest(folder)["files"]
    assert dataset_identity("isbi2012", tmp_path) == before and before["files"] == 2
