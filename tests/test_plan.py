"""``segbench plan``: runs, schedules, data and GPU time of a target, from benchmark records (no GPU)."""

from __future__ import annotations

import json

import pytest

from segbench.cli import main
from segbench.errors import InputError
from segbench.plan import GPU_TYPES, PAPER_PIXELS, plan
from segbench.registry import runs_for_tables
from segbench.status import assembled_with


def write_bench(folder, *, gpu: bool = False) -> None:
    """A synthetic CPU record (r50_fpn 1 img/s and r50_c4 0.5 img/s at 100x100; U-Net 1 s per 572 tile),
    plus, with ``gpu``, an H100 record measured at the paper's size."""
    folder.mkdir(parents=True, exist_ok=True)
    cpu = {
        "suite": "maskrcnn",
        "status": "ok",
        "device": "cpu",
        "device_name": "Test CPU",
        "settings": {"size": "100x100"},
        "rows": [
            {"run": "r50_fpn", "train_img_s": 1.0},
            {"run": "r50_c4", "train_img_s": 0.5},
            {"run": "r50_fpn_person_kp", "train_img_s": 0.25},
        ],
    }
    (folder / "maskrcnn-cpu.json").write_text(json.dumps(cpu))
    unet = {
        "suite": "unet",
        "status": "ok",
        "device": "cpu",
        "device_name": "Test CPU",
        "settings": {"tile": 572},
        "rows": [{"tile": 572, "ms_per_tile": 1000.0}],
    }
    (folder / "unet-cpu.json").write_text(json.dumps(unet))
    if gpu:
        cuda = {
            "suite": "maskrcnn",
            "status": "ok",
            "device": "cuda",
            "device_name": "NVIDIA H100 80GB HBM3",
            "settings": {"size": "800x1067"},
            "rows": [{"run": "r50_fpn", "train_img_s": 20.0}],
        }
        (folder / "maskrcnn-cuda.json").write_text(json.dumps(cuda))


def test_planner_on_a_synthetic_cpu_record(tmp_path):
    write_bench(tmp_path)
    p = plan("reproduce_all", "paper", gpus=8, gpu_type="h100", bench_dir=tmp_path)
    anchor = GPU_TYPES["h100"].maskrcnn_img_s
    factor = anchor / (1.0 * 100 * 100 / PAPER_PIXELS)
    assert p.factor["factor"] == pytest.approx(factor)
    runs = {r.run: r for r in p.runs}
    fpn, c4 = runs["r50_fpn"], runs["r50_c4"]
    assert (fpn.iterations, fpn.images_per_batch, fpn.images_seen, fpn.gpus) == (160000, 16, 2_560_000, 8)
    assert fpn.img_s_per_gpu == pytest.approx(anchor)  # the calibration run gets the anchor itself
    assert fpn.gpu_hours == pytest.approx(2_560_000 / anchor / 3600)
    assert fpn.wall_hours == pytest.approx(fpn.gpu_hours / 8)
    assert c4.img_s_per_gpu == pytest.approx(anchor / 2)  # relative CPU costs are kept
    assert runs["r101_fpn"].img_s_per_gpu == pytest.approx(anchor / (44 / 32))  # nearest run x backbone cost
    assert runs["r50_fpn_person_kp_mask"].img_s_per_gpu == pytest.approx(
        anchor / 4
    )  # nearest: the keypoint run
    assert runs["x101_fpn"].images_per_batch == 8 and runs["x101_fpn"].images_seen == 1_280_000
    kp = runs["r50_fpn_person_kp"]
    assert (kp.iterations, kp.images_seen, kp.dataset) == (90000, 1_440_000, "coco2017_person_keypoints")
    unet = runs["unet_isbi"]
    assert (unet.iterations, unet.images_per_batch, unet.gpus) == (60000, 1, 1)
    assert unet.img_s_per_gpu == pytest.approx(factor / 3.0)  # 1 s forward, x3 for a training step
    assert runs["threshold_isbi"].gpu_hours == 0
    assert p.gpu_hours == pytest.approx(sum(r.gpu_hours for r in p.runs))
    assert p.datasets["coco2017"]["bytes"] > 19 * 2**30  # COCO counted once for both COCO entries
    assert sorted(p.datasets["coco2017"]["datasets"]) == ["coco2017", "coco2017_person_keypoints"]
    assert p.datasets["isbi2012"]["bytes"] is None


def test_fewer_gpus_keep_the_images_seen_and_the_gpu_hours(tmp_path):
    write_bench(tmp_path)
    eight = plan("table2a", "paper", gpus=8, bench_dir=tmp_path)
    four = plan("table2a", "paper", gpus=4, bench_dir=tmp_path)
    a, b = eight.runs[0], four.runs[0]
    assert (b.iterations, b.images_per_batch, b.images_seen) == (2 * a.iterations, 8, a.images_seen)
    assert b.gpu_hours == pytest.approx(a.gpu_hours) and four.wall_hours == pytest.approx(
        2 * eight.wall_hours
    )


def test_a_gpu_record_of_the_type_is_used_directly(tmp_path):
    write_bench(tmp_path, gpu=True)
    p = plan("table2a", "paper", gpus=8, gpu_type="h100", bench_dir=tmp_path)
    fpn = next(r for r in p.runs if r.run == "r50_fpn")
    assert fpn.img_s_per_gpu == pytest.approx(20.0)
    assert "maskrcnn-cuda.json (GPU NVIDIA H100" in fpn.source and "used directly" in fpn.source
    assert "scaled by" not in fpn.source
    v100 = plan(
        "table2a", "paper", gpus=8, gpu_type="v100", bench_dir=tmp_path
    )  # no V100 record: the CPU one
    assert all("maskrcnn-cpu.json (CPU" in r.source for r in v100.runs)


def test_every_run_of_reproduce_table2_is_listed_with_its_source(tmp_path, capsys):
    write_bench(tmp_path)
    assert (
        main(["plan", "reproduce_table2", "--scale", "paper", "--gpus", "8", "--bench", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    expected = [rs.run_id for rs in runs_for_tables(assembled_with("table2"), "paper")]
    listed = [line.split()[0] for line in out if line.split() and line.split()[0] in expected]
    assert listed == expected and len(expected) >= 10
    for run_id in expected:
        row = next(i for i, line in enumerate(out) if line.startswith(run_id + " "))
        source = out[row + 1].strip()
        assert source.startswith(f"source: {tmp_path / 'maskrcnn-cpu.json'} (CPU, ")
        assert "scaled by" in source and "for h100: R50-FPN" in source
    total = next(line for line in out if line.startswith("total:"))
    assert "GPU-hours (h100)" in total and "wall on 8 GPU(s)" in total


def test_json_output_and_bad_input(tmp_path, capsys):
    write_bench(tmp_path)
    assert main(["plan", "table2a", "--json", "--bench", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpus"] == 8 and data["gpu_type"] == "h100" and data["scale"] == "paper"
    assert data["total"]["gpu_hours"] == pytest.approx(sum(r["gpu_hours"] for r in data["runs"]))
    assert all(r["source"].startswith("source: ") for r in data["runs"])
    assert main(["plan", "no_such_table", "--bench", str(tmp_path)]) == 2
    with pytest.raises(InputError, match="no Mask R-CNN benchmark record"):
        plan("table2a", "paper", bench_dir=tmp_path / "empty")


def test_the_committed_records_give_an_estimate(capsys):
    assert main(["plan", "reproduce_table2", "--scale", "paper", "--gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "source: " in out and "maskrcnn-cpu.json (CPU" in out and "total:" in out
