"""``segbench metrics {isbi,seg,coco}``: output and one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from segbench.cli import metrics as metrics_cli
from segbench.errors import SegbenchError

tifffile = pytest.importorskip("tifffile")


def run_cli(argv: list[str]) -> int:
    """Run ``segbench metrics ...`` in-process the way ``segbench.cli.main`` does (only this subcommand is
    registered, so the test does not depend on the other subcommands' modules)."""
    parser = argparse.ArgumentParser(prog="segbench")
    sub = parser.add_subparsers(dest="command", required=True)
    metrics_cli.add_parser(sub)
    args = parser.parse_args(["metrics", *argv])
    try:
        return int(args.func(args) or 0)
    except SegbenchError as exc:
        import sys

        print(f"segbench: error: {exc}", file=sys.stderr)
        return exc.exit_code


@pytest.fixture()
def isbi_files(tmp_path):
    labels = np.zeros((2, 24, 24), np.uint8)
    labels[:, 3:11, 3:20] = 255
    labels[:, 13:21, 3:20] = 255
    pred = (labels / 255).astype(np.float32)
    # a two-pixel bridge between the two cells: in the column scan (11, 8) comes first and is simple (it
    # only touches the upper cell), so it is absorbed; (12, 8) then touches both cells: one merge pixel
    pred[0, 11:13, 8] = 1.0
    lp, pp = tmp_path / "labels.tif", tmp_path / "pred.tif"
    tifffile.imwrite(lp, labels)
    tifffile.imwrite(pp, pred)
    return tmp_path, pp, lp, pred, labels


def test_isbi_json(isbi_files, capsys):
    _, pp, lp, _, _ = isbi_files
    assert run_cli(["isbi", "--pred", str(pp), "--labels", str(lp), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "warping_error",
        "rand_error",
        "pixel_error",
        "best_threshold",
        "per_threshold",
        "split_pixels",
        "merge_pixels",
        "slices",
    ):
        assert key in out
    assert (
        set(out["best_threshold"])
        == set(out["per_threshold"])
        == {"warping_error", "rand_error", "pixel_error"}
    )
    assert all(len(v) == 10 for v in out["per_threshold"].values())
    assert out["slices"] == 2 and out["merge_pixels"] == 1 and out["split_pixels"] == 0
    assert out["warping_error"] == 1 / (2 * 24 * 24)


def test_isbi_table_and_membrane_prob(isbi_files, capsys):
    tmp, _, lp, _, labels = isbi_files
    pm = tmp / "pmem.tif"
    tifffile.imwrite(pm, (1 - labels / 255).astype(np.float32))
    assert run_cli(["isbi", "--pred", str(pm), "--labels", str(lp), "--membrane-prob"]) == 0
    out = capsys.readouterr().out
    assert "warping_error" in out and "rand_error" in out and "pixel_error" in out
    assert run_cli(["isbi", "--pred", str(pm), "--labels", str(lp), "--membrane-prob", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["warping_error"] == res["rand_error"] == res["pixel_error"] == 0.0


def test_2d_tiffs_are_one_slice(tmp_path, capsys):
    labels = np.zeros((16, 16), np.uint8)
    labels[2:14, 2:14] = 255
    tifffile.imwrite(tmp_path / "l.tif", labels)
    tifffile.imwrite(tmp_path / "p.tif", (labels / 255).astype(np.float32))
    assert (
        run_cli(["isbi", "--pred", str(tmp_path / "p.tif"), "--labels", str(tmp_path / "l.tif"), "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["slices"] == 1


def _expect_error(argv, capsys, *needles):
    code = run_cli(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_isbi_errors(isbi_files, capsys):
    tmp, pp, lp, pred, labels = isbi_files
    # shapes differ
    small = tmp / "small.tif"
    tifffile.imwrite(small, pred[:1])
    _expect_error(["isbi", "--pred", str(small), "--labels", str(lp)], capsys, str(small), "shape")
    # labels not binary
    grey = tmp / "grey.tif"
    tifffile.imwrite(grey, (labels // 2).astype(np.uint8))
    _expect_error(["isbi", "--pred", str(pp), "--labels", str(grey)], capsys, str(grey), "0/255")
    # an 8-bit 0..255 prediction
    u8 = tmp / "u8.tif"
    tifffile.imwrite(u8, labels)
    _expect_error(["isbi", "--pred", str(u8), "--labels", str(lp)], capsys, str(u8), "8-bit", "255")
    # NaN
    nan = tmp / "nan.tif"
    bad = pred.copy()
    bad[1, 2, 3] = np.nan
    tifffile.imwrite(nan, bad)
    _expect_error(["isbi", "--pred", str(nan), "--labels", str(lp)], capsys, str(nan), "NaN")
    # empty stack
    empty = tmp / "empty.tif"
    with pytest.warns(UserWarning):
        tifffile.imwrite(empty, np.zeros((0, 24, 24), np.float32))
    _expect_error(["isbi", "--pred", str(empty), "--labels", str(lp)], capsys, str(empty), "empty")
    # corrupt and truncated TIFFs, a file that is not a TIFF, a missing file
    corrupt = tmp / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\xff" * 64)
    _expect_error(["isbi", "--pred", str(corrupt), "--labels", str(lp)], capsys, str(corrupt))
    truncated = tmp / "truncated.tif"
    data = pp.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    _expect_error(["isbi", "--pred", str(truncated), "--labels", str(lp)], capsys, str(truncated), "TIFF")
    text = tmp / "text.tif"
    text.write_text("not a tiff")
    _expect_error(["isbi", "--pred", str(pp), "--labels", str(text)], capsys, str(text), "TIFF")
    _expect_error(
        ["isbi", "--pred", str(tmp / "nope.tif"), "--labels", str(lp)], capsys, "nope.tif", "not found"
    )


def test_seg_cli(tmp_path, capsys):
    gt = np.zeros((2, 12, 12), np.uint16)
    gt[:, 1:5, 1:5] = 1
    gt[:, 6:11, 6:11] = 2
    pred = gt.copy()
    pred[1, 6:11, 6:11] = 0
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "pred.tif", pred)
    assert (
        run_cli(["seg", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif"), "--json"])
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert (
        res["seg"] == 0.75 and res["objects"] == 4 and res["iou"] == pytest.approx((2 * 16 + 25) / (2 * 41))
    )
    assert run_cli(["seg", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif")]) == 0
    assert "SEG" in capsys.readouterr().out
    tifffile.imwrite(tmp_path / "zero.tif", np.zeros_like(gt))
    _expect_error(
        ["seg", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "zero.tif")],
        capsys,
        "zero.tif",
        "no reference objects",
    )
    tifffile.imwrite(tmp_path / "other.tif", gt[:1])
    _expect_error(
        ["seg", "--pred", str(tmp_path / "other.tif"), "--gt", str(tmp_path / "gt.tif")],
        capsys,
        "other.tif",
        "shape",
    )


def test_coco_cli(tmp_path, capsys):
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "x"}],
    }
    dt = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    base = [
        "coco",
        "--gt",
        str(tmp_path / "gt.json"),
        "--dt",
        str(tmp_path / "dt.json"),
        "--iou-type",
        "bbox",
    ]
    for backend in ("pycocotools", "faster"):
        assert run_cli([*base, "--backend", backend, "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert list(stats)[:3] == ["AP", "AP50", "AP75"] and stats["AP"] == pytest.approx(1.0)
    assert run_cli(base) == 0
    assert "AR100" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{not json")
    _expect_error(
        ["coco", "--gt", str(tmp_path / "gt.json"), "--dt", str(tmp_path / "bad.json"), "--iou-type", "bbox"],
        capsys,
        "bad.json",
        "malformed",
    )


def test_registered_in_the_segbench_command():
    from segbench import cli

    try:
        parser = cli.build_parser()
    except ImportError as exc:  # another subcommand's module is not there yet
        pytest.skip(f"segbench CLI incomplete: {exc}")
    args = parser.parse_args(["metrics", "coco", "--gt", "g.json", "--dt", "d.json", "--iou-type", "segm"])
    assert args.kind == "coco" and args.func is metrics_cli.run_coco
