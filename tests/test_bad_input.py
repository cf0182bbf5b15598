"""Bad input through the real ``segbench`` entry point: every case exits non-zero with ONE line that names
the offending file (or entry) and says what to do, and leaves no result file behind as if complete.

Each case builds its input in ``tmp_path`` (smoke-scale synthetic data, a smoke run trained once per
session, copies of the registry), runs ``segbench.cli.main`` in-process and checks stderr, the exit code,
the files that must not exist afterwards, the files that must be unchanged, and that no temporary file
(``.<name>.*.tmp``) is left anywhere under ``tmp_path``.
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from segbench import data
from segbench.cli import main
from segbench.data import download as data_download
from segbench.data import preparation
from segbench.data import registry as data_registry
from segbench.registry import registry_path

REPO = Path(__file__).resolve().parents[1]
SCALE = "smoke"
RUN_A, RUN_B = "r50_c4", "r50_c4_softmax"  # the two runs of table2b


# -- session fixtures: smoke data and two trained + evaluated smoke runs -------------------------------
@pytest.fixture(scope="session")
def smoke(tmp_path_factory) -> dict[str, Path]:
    """``data``: shapes_smoke + em_smoke; ``results``: r50_c4 and r50_c4_softmax trained and evaluated."""
    root = tmp_path_factory.mktemp("smoke")
    data_root, results = root / "data", root / "results"
    for name in ("shapes_smoke", "em_smoke"):
        data.prepare(name, data_root)
    for run in (RUN_A, RUN_B):
        for command in ("train", "evaluate"):
            argv = [
                command,
                "--run",
                run,
                "--scale",
                SCALE,
                "--results",
                str(results),
                "--data-root",
                str(data_root),
                "--device",
                "cpu",
            ]
            assert main(argv) == 0, argv
    return {"data": data_root, "results": results}


def run_dir(results: Path, run: str) -> Path:
    return results / SCALE / "runs" / f"{run}-seed0"


# -- the case table -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    argv: list[str]
    names: list[str]  # substrings the error line must contain (the offending file / entry)
    fix: str  # the "what to do" part the error line must contain
    code: int = 2
    absent: list[Path] = dataclasses.field(default_factory=list)  # must not exist afterwards
    unchanged: list[Path] = dataclasses.field(default_factory=list)  # must keep their bytes


class Ctx:
    """What a case builder gets: a private tmp dir, copies of the smoke data / results, monkeypatch."""

    def __init__(self, tmp: Path, smoke: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp, self.smoke, self.monkeypatch = tmp, smoke, monkeypatch

    def data(self) -> Path:
        target = self.tmp / "data"
        if not target.exists():
            shutil.copytree(self.smoke["data"], target)
        return target

    def results(self, *runs: str) -> Path:
        """A results root holding copies of the given trained runs (nothing else)."""
        target = self.tmp / "results"
        for run in runs:
            shutil.copytree(run_dir(self.smoke["results"], run), run_dir(target, run))
        target.mkdir(exist_ok=True)
        return target

    def run_args(self, command: str, run: str = RUN_A, results: Path | None = None) -> list[str]:
        return [
            command,
            "--run",
            run,
            "--scale",
            SCALE,
            "--results",
            str(results or self.tmp / "results"),
            "--data-root",
            str(self.data()),
            "--device",
            "cpu",
        ]

    def registry_copy(self, edit: Callable[[dict], None]) -> Path:
        reg = yaml.safe_load(registry_path().read_text(encoding="utf-8"))
        edit(reg)
        path = self.tmp / "experiments.yaml"
        path.write_text(yaml.safe_dump(reg, sort_keys=False), encoding="utf-8")
        self.monkeypatch.setenv("SEGBENCH_REGISTRY", str(path))
        return path


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


# COCO annotation files -----------------------------------------------------------------------------
def _train_json(ctx: Ctx) -> Path:
    return ctx.data() / "shapes_smoke" / "annotations" / "instances_train.json"


def _train_case(ctx: Ctx, offender: str, fix: str) -> Case:
    # Without its MANIFEST the edited dataset is one the user made, which train validates; a segbench-made
    # dataset that changed would be regenerated instead (test_bad_input_tampered_*).
    (ctx.data() / "shapes_smoke" / "MANIFEST.json").unlink(missing_ok=True)
    out = run_dir(ctx.tmp / "results", RUN_A)
    return Case(
        ctx.run_args("train"),
        [offender],
        fix,
        absent=[out / "train_done.json", out / "model_final.pt", out / "checkpoint_00000002.pt"],
    )


def case_coco_malformed_json(ctx: Ctx) -> Case:
    path = _train_json(ctx)
    path.write_text(path.read_text()[:200])
    return _train_case(ctx, str(path), "regenerate or fix the file")


def case_coco_not_coco(ctx: Ctx) -> Case:
    path = _train_json(ctx)
    path.write_text(json.dumps([{"image_id": 1}]))
    return _train_case(ctx, str(path), "point the dataset at instances_*.json")


def case_coco_annotation_of_unknown_image(ctx: Ctx) -> Case:
    path = _train_json(ctx)
    _edit_json(path, lambda d: d["annotations"][0].update(image_id=424242))
    return _train_case(ctx, str(path), "add the image or drop the annotation")


def case_coco_image_missing_on_disk(ctx: Ctx) -> Case:
    path = _train_json(ctx)
    missing = path.parents[1] / "images" / "train" / "000000000003.png"
    missing.unlink()
    case = _train_case(ctx, str(path), "regenerate the dataset")
    case.names.append(str(missing))
    return case


def case_coco_empty_image_file(ctx: Ctx) -> Case:
    images = _train_json(ctx).parents[1] / "images" / "train"
    for png in images.iterdir():
        png.write_bytes(b"")
    return _train_case(ctx, str(images), "regenerate it")


def case_coco_degenerate_boxes(ctx: Ctx) -> Case:
    path = _train_json(ctx)

    def flatten(d: dict) -> None:
        for ann in d["annotations"]:
            ann["bbox"][2] = 0.0

    _edit_json(path, flatten)
    return _train_case(ctx, str(path), "fix the boxes")


def case_coco_polygon_two_points(ctx: Ctx) -> Case:
    path = _train_json(ctx)
    _edit_json(path, lambda d: d["annotations"][0].update(segmentation=[[1.0, 1.0, 5.0, 5.0]]))
    return _train_case(ctx, str(path), "drop that polygon")


def _metrics_coco_case(ctx: Ctx, edit: Callable[[dict], None], fix: str, iou_type: str = "segm") -> Case:
    gt = ctx.tmp / "gt.json"
    shutil.copy(ctx.smoke["data"] / "shapes_smoke" / "annotations" / "instances_val.json", gt)
    _edit_json(gt, edit)
    dt = ctx.tmp / "dt.json"
    dt.write_text("[]")
    return Case(["metrics", "coco", "--gt", str(gt), "--dt", str(dt), "--iou-type", iou_type], [str(gt)], fix)


def case_metrics_coco_annotation_of_unknown_image(ctx: Ctx) -> Case:
    return _metrics_coco_case(
        ctx, lambda d: d["annotations"][0].update(image_id=424242), "add the image or drop the annotation"
    )


def case_metrics_coco_polygon_two_points(ctx: Ctx) -> Case:
    return _metrics_coco_case(
        ctx, lambda d: d["annotations"][0].update(segmentation=[[1, 1, 4, 4]]), "drop that polygon"
    )


def case_coco_duplicate_annotation_id(ctx: Ctx) -> Case:
    path = _train_json(ctx)

    def duplicate(d: dict) -> None:
        d["annotations"][1]["id"] = d["annotations"][0]["id"]

    _edit_json(path, duplicate)
    case = _train_case(ctx, str(path), "give each annotation its own id")
    case.names.append("appears twice")
    return case


def case_coco_category_not_in_categories(ctx: Ctx) -> Case:
    path = _train_json(ctx)
    _edit_json(path, lambda d: d["annotations"][0].update(category_id=4242))
    case = _train_case(ctx, str(path), "add the category or fix the annotation")
    case.names.append("category_id 4242")
    return case


def case_metrics_coco_results_not_a_list(ctx: Ctx) -> Case:
    gt = ctx.smoke["data"] / "shapes_smoke" / "annotations" / "instances_val.json"
    dt = ctx.tmp / "dt.json"
    dt.write_text(json.dumps({"annotations": []}))
    return Case(
        ["metrics", "coco", "--gt", str(gt), "--dt", str(dt), "--iou-type", "bbox"],
        [str(dt)],
        "expected a list of detections",
    )


# ISBI TIFFs -----------------------------------------------------------------------------------------
def _isbi_pair(
    ctx: Ctx, pred: np.ndarray | None = None, labels: np.ndarray | None = None
) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    good_labels = np.where(rng.random((2, 32, 32)) > 0.3, 255, 0).astype(np.uint8)
    good_pred = rng.random((2, 32, 32)).astype(np.float32)
    p, g = ctx.tmp / "pred.tif", ctx.tmp / "labels.tif"
    tifffile.imwrite(p, good_pred if pred is None else pred)
    tifffile.imwrite(g, good_labels if labels is None else labels)
    return p, g


def _isbi_case(p: Path, g: Path, offender: Path, fix: str) -> Case:
    return Case(["metrics", "isbi", "--pred", str(p), "--labels", str(g), "--json"], [str(offender)], fix)


def case_isbi_corrupt_tiff(ctx: Ctx) -> Case:
    p, g = _isbi_pair(ctx)
    p.write_bytes(b"II*\x00" + bytes(np.random.default_rng(1).integers(0, 256, 600, dtype=np.uint8)))
    return _isbi_case(p, g, p, "no readable image data); write a non-empty")


def case_isbi_truncated_tiff(ctx: Ctx) -> Case:
    p, g = _isbi_pair(ctx)
    blob = g.read_bytes()
    g.write_bytes(blob[: len(blob) // 3])
    return _isbi_case(p, g, g, "re-export it")


def case_isbi_empty_tiff_file(ctx: Ctx) -> Case:
    p, g = _isbi_pair(ctx)
    p.write_bytes(b"")
    return _isbi_case(p, g, p, "re-export it")


def case_isbi_labels_not_binary(ctx: Ctx) -> Case:
    labels = np.random.default_rng(2).integers(0, 5, (2, 32, 32)).astype(np.uint8)
    p, g = _isbi_pair(ctx, labels=labels)
    return _isbi_case(p, g, g, "binar")


def case_isbi_prediction_0_255(ctx: Ctx) -> Case:
    pred = np.random.default_rng(3).integers(0, 256, (2, 32, 32)).astype(np.uint8)
    p, g = _isbi_pair(ctx, pred=pred)
    return _isbi_case(p, g, p, "[0, 1]")


def case_isbi_prediction_nan(ctx: Ctx) -> Case:
    pred = np.random.default_rng(4).random((2, 32, 32)).astype(np.float32)
    pred[1, 5, 7] = np.nan
    p, g = _isbi_pair(ctx, pred=pred)
    return _isbi_case(p, g, p, "NaN")


def case_isbi_shape_mismatch(ctx: Ctx) -> Case:
    p, g = _isbi_pair(ctx, pred=np.random.default_rng(5).random((2, 32, 30)).astype(np.float32))
    return _isbi_case(p, g, p, "must be the same (Z, Y, X) stack")


# registry and names -----------------------------------------------------------------------------------
def case_registry_unknown_variant(ctx: Ctx) -> Case:
    path = ctx.registry_copy(lambda r: r["runs"][RUN_A]["model"].update(roi_layer="roi_bogus"))
    out = run_dir(ctx.tmp / "results", RUN_A)
    return Case(
        ctx.run_args("train"),
        [str(path), f"runs/{RUN_A}/model", "roi_bogus"],
        "fix that entry",
        absent=[out / "train_done.json", out / "model_final.pt"],
    )


def case_registry_unknown_arch(ctx: Ctx) -> Case:
    path = ctx.registry_copy(lambda r: r["runs"][RUN_A]["model"].update(arch="c6"))
    return Case(
        ctx.run_args("train"),
        [str(path), f"runs/{RUN_A}/model/arch"],
        "fix that entry",
        absent=[ctx.tmp / "results"],
    )


def case_unknown_run(ctx: Ctx) -> Case:
    return Case(
        ctx.run_args("train", run="r51_c4"),
        ["'r51_c4'"],
        "segbench list --runs",
        absent=[ctx.tmp / "results"],
    )


def case_unknown_scale(ctx: Ctx) -> Case:
    argv = ctx.run_args("train")
    argv[argv.index(SCALE)] = "huge"
    return Case(argv, ["'huge'"], "choose one of", absent=[ctx.tmp / "results"])


def case_unknown_table(ctx: Ctx) -> Case:
    results = ctx.results()
    return Case(
        ["table", "table9z", "--scale", SCALE, "--results", str(results)],
        ["'table9z'"],
        "segbench list",
        absent=[results / SCALE / "tables"],
    )


def case_unknown_dataset(ctx: Ctx) -> Case:
    return Case(
        ["data", "verify", "shapes_nope", "--data-root", str(ctx.data())], ["'shapes_nope'"], "known datasets"
    )


# tables ------------------------------------------------------------------------------------------------
def case_table_missing_metrics(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A, RUN_B)
    missing = run_dir(results, RUN_B) / "metrics.json"
    missing.unlink()
    tables = results / SCALE / "tables"
    return Case(
        ["table", "table2b", "--scale", SCALE, "--results", str(results)],
        [str(missing)],
        f"segbench train --run {RUN_B}",
        absent=[tables / "table2b.json", tables / "table2b.md"],
    )


def case_table_malformed_metrics(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A, RUN_B)
    bad = run_dir(results, RUN_A) / "metrics.json"
    bad.write_text(bad.read_text()[:-40])
    tables = results / SCALE / "tables"
    return Case(
        ["table", "table2b", "--scale", SCALE, "--results", str(results)],
        [str(bad)],
        "regenerate or fix the file",
        absent=[tables / "table2b.json", tables / "table2b.csv"],
    )


# data: checksums and downloads --------------------------------------------------------------------------
def case_data_checksum_mismatch(ctx: Ctx) -> Case:
    root = ctx.data()
    tampered = root / "shapes_smoke" / "images" / "val" / "000001000002.png"
    blob = bytearray(tampered.read_bytes())
    blob[-20] ^= 0xFF
    tampered.write_bytes(bytes(blob))
    return Case(
        ["data", "verify", "shapes_smoke", "--data-root", str(root)],
        [str(tampered)],
        "segbench data prepare shapes_smoke --force",
    )


class _Server:
    """A loopback HTTP server (never the internet) that serves ``files``; paths in ``truncate`` announce
    the full Content-Length but send half the body."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = server.files.get(self.path)
                if body is None or self.headers.get("Range"):
                    self.send_error(404 if body is None else 416)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.truncate else body)
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _download_case(ctx: Ctx, *, truncate: bool, wrong_checksum: bool) -> Case:
    payload = np.random.default_rng(6).integers(0, 256, (2, 64, 64), dtype=np.uint8).tobytes()
    server = _Server()
    ctx.monkeypatch.setattr(ctx, "server", server, raising=False)
    server.files["/toy-volume.tif"] = payload
    if truncate:
        server.truncate.add("/toy-volume.tif")
    digest = hashlib.sha256(b"something else" if wrong_checksum else payload).hexdigest()
    registry_file = ctx.tmp / "datasets.yaml"
    registry_file.write_text(f"""
datasets:
  toy_em:
    source: real
    format: isbi2012
    downloads:
      - {{url: "{server.base}/toy-volume.tif", file: toy-volume.tif, sha256: {digest}, extract: false}}
    layout: {{volume: toy-volume.tif, labels: toy-labels.tif}}
""")
    ctx.monkeypatch.setattr(data_registry, "DATASETS_YAML", registry_file)
    ctx.monkeypatch.setattr(data_download, "BACKOFF_S", 0.0)  # retries (bounded) without waiting
    root = ctx.tmp / "dl"
    fix = "rerun `segbench data download toy_em` to resume"
    return Case(
        ["data", "download", "toy_em", "--data-root", str(root)],
        ["toy-volume.tif"],
        fix,
        absent=[root / "toy_em" / "toy-volume.tif", root / "toy_em" / "MANIFEST.json"],
    )


def case_download_truncated(ctx: Ctx) -> Case:
    case = _download_case(ctx, truncate=True, wrong_checksum=False)
    case.names += ["truncated download", "partial file kept"]
    return case


def case_download_checksum_mismatch(ctx: Ctx) -> Case:
    case = _download_case(ctx, truncate=False, wrong_checksum=True)
    case.names += ["checksum mismatch", f"{ctx.server.base}/toy-volume.tif"]
    case.absent.append(case.absent[0].with_name("toy-volume.tif.part"))
    return case


# checkpoints -------------------------------------------------------------------------------------------
def case_checkpoint_of_another_variant(ctx: Ctx) -> Case:
    results = ctx.results()
    foreign = run_dir(results, RUN_B) / "checkpoint_00000002.pt"
    foreign.parent.mkdir(parents=True)
    shutil.copy(run_dir(ctx.smoke["results"], RUN_A) / "checkpoint_00000002.pt", foreign)
    out = run_dir(results, RUN_B)
    return Case(
        ctx.run_args("train", run=RUN_B, results=results),
        [str(foreign), f"{RUN_A!r}", f"{RUN_B!r}"],
        "delete it or point the run at the right directory",
        absent=[out / "train_done.json", out / "model_final.pt", out / "checkpoint_00000004.pt"],
        unchanged=[foreign],
    )


def case_checkpoint_corrupt(ctx: Ctx) -> Case:
    results = ctx.results()
    out = run_dir(results, RUN_A)
    out.mkdir(parents=True)
    corrupt = out / "checkpoint_00000002.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip archive" * 10)
    return Case(
        ctx.run_args("train", results=results),
        [str(corrupt)],
        "delete it to retrain",
        absent=[out / "train_done.json", out / "model_final.pt", out / "checkpoint_00000004.pt"],
    )


def case_final_model_corrupt(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A)
    out = run_dir(results, RUN_A)
    (out / "metrics.json").unlink()
    final = out / "model_final.pt"
    final.write_bytes(final.read_bytes()[:1000])
    return Case(
        ctx.run_args("evaluate", results=results),
        [str(final)],
        "delete it to retrain",
        absent=[out / "metrics.json"],
    )


# disk full -----------------------------------------------------------------------------------------------
def _disk_full(ctx: Ctx) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ctx.monkeypatch.setattr(os, "fsync", no_space)


def case_disk_full_new_table(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A, RUN_B)
    _disk_full(ctx)
    target = results / SCALE / "tables" / "table2b.json"
    return Case(
        ["table", "table2b", "--scale", SCALE, "--results", str(results)],
        [str(target), os.strerror(errno.ENOSPC)],
        "free space or choose another --results",
        code=1,
        absent=[target, target.with_suffix(".csv"), target.with_suffix(".md")],
    )


def case_disk_full_keeps_old_table(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A, RUN_B)
    assert main(["table", "table2b", "--scale", SCALE, "--results", str(results)]) == 0
    target = results / SCALE / "tables" / "table2b.json"
    # an older table on disk (another title): the new one must be written, and the disk is full
    old = json.loads(target.read_text())
    target.write_text(json.dumps({**old, "title": "an older assembly"}))
    _disk_full(ctx)
    return Case(
        ["table", "table2b", "--scale", SCALE, "--results", str(results)],
        [str(target), os.strerror(errno.ENOSPC)],
        "free space or choose another --results",
        code=1,
        unchanged=[target, target.with_suffix(".csv"), target.with_suffix(".md")],
    )


def case_disk_full_metrics(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A)
    out = run_dir(results, RUN_A)
    (out / "metrics.json").unlink()
    _disk_full(ctx)
    return Case(
        ctx.run_args("evaluate", results=results),
        [str(out), os.strerror(errno.ENOSPC)],
        "free space or choose another --results",
        code=1,
        absent=[out / "metrics.json"],
    )


CASES = {name[len("case_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


def _snapshot(paths: list[Path]) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


@pytest.mark.parametrize("build", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_and_leaves_nothing_half_written(build, smoke, tmp_path, monkeypatch, capsys):
    ctx = Ctx(tmp_path, smoke, monkeypatch)
    try:
        case = build(ctx)
        before = _snapshot(case.unchanged)
        capsys.readouterr()
        code = main(case.argv)
    finally:
        server = getattr(ctx, "server", None)
        if server is not None:
            server.close()
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    errors = [
        line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("segbench: error: ")
    ]
    assert len(errors) == 1, stderr
    line = errors[0]
    for name in case.names:
        assert name in line, f"{name!r} not named in: {line}"
    assert case.fix in line, f"no fix ({case.fix!r}) in: {line}"
    assert code == case.code, line
    for path in case.absent:
        assert not path.exists(), f"{path} left behind after: {line}"
    assert _snapshot(case.unchanged) == before
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [], leftovers


def test_at_least_25_cases():
    assert len(CASES) >= 25


# -- COCO consistency: each defect is one line naming the file and the entry ----------------------------------
def _tiny_gt() -> dict:
    images = [{"id": i, "file_name": f"{i}.png", "width": 32, "height": 24} for i in (1, 2)]
    anns = [
        {
            "id": 10 + k,
            "image_id": 1 + k % 2,
            "category_id": 1,
            "bbox": [2.0, 3.0, 10.0, 8.0],
            "area": 60.0,
            "iscrowd": 0,
            "segmentation": [[2, 3, 12, 3, 12, 11, 2, 11]],
        }
        for k in range(4)
    ]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "shape"}]}


def _tiny_dt(gt: dict) -> list[dict]:
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": list(a["bbox"]),
            "score": 0.9,
            "segmentation": a["segmentation"],
        }
        for a in gt["annotations"]
    ]


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _set(path: list, value):
    def edit(obj):
        target = obj
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


COCO_DEFECTS = {  # name: (edit of the ground truth, edit of the detections, entry named, fix)
    "gt_duplicate_annotation_id": (
        _set(["annotations", 1, "id"], 10),
        None,
        "annotation 10 appears twice",
        "give each annotation its own id",
    ),
    "gt_category_not_in_categories": (
        _set(["annotations", 0, "category_id"], 7),
        None,
        "annotation 10 has category_id 7",
        "add the category",
    ),
    "gt_image_width_zero": (
        _set(["images", 0, "width"], 0),
        None,
        "image 1 has width 0",
        "positive integers",
    ),
    "gt_rle_size_not_the_image": (
        _set(["annotations", 0, "segmentation"], _rle(np.ones((16, 16), bool))),
        None,
        "annotation 10 has an RLE of size [16, 16], but its image is [24, 32]",
        "fix or drop that entry",
    ),
    "gt_rle_counts_do_not_decode": (
        _set(["annotations", 0, "segmentation"], {"size": [24, 32], "counts": "~~~"}),
        None,
        "annotation 10 has RLE counts that do not decode",
        "fix or drop",
    ),
    "gt_rle_counts_wrong_total": (
        _set(["annotations", 0, "segmentation"], {"size": [24, 32], "counts": [5, 7]}),
        None,
        "cover 12 pixels, not 24 x 32",
        "fix or drop",
    ),
    "dt_category_not_in_categories": (
        None,
        _set([0, "category_id"], 3),
        "detection 0 (image_id 1) has category_id 3",
        "map the detector's labels",
    ),
    "dt_box_negative_width": (
        None,
        _set([0, "bbox"], [5.0, 5.0, -4.0, 3.0]),
        "detection 0 (image_id 1) has a bbox with negative width",
        "fix or drop that detection",
    ),
    "dt_polygon_two_points": (
        None,
        _set([1, "segmentation"], [[1, 1, 5, 5]]),
        "detection 1 (image_id 2) has a polygon with fewer than 3 points",
        "fix or drop that detection",
    ),
    "dt_rle_size_not_the_image": (
        None,
        _set([0, "segmentation"], _rle(np.ones((24, 30), bool))),
        "detection 0 (image_id 1) has an RLE of size [24, 30]",
        "fix or drop",
    ),
    "dt_score_nan": (
        None,
        _set([0, "score"], float("nan")),
        "detection 0 (image_id 1) has score nan",
        "finite numbers",
    ),
}


@pytest.mark.parametrize("defect", list(COCO_DEFECTS))
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_bad_input_coco_defect_is_one_line_naming_file_and_entry(defect, iou_type, tmp_path, capsys):
    edit_gt, edit_dt, entry, fix = COCO_DEFECTS[defect]
    gt = _tiny_gt()
    dt = _tiny_dt(gt)
    (edit_gt or (lambda _: None))(gt)
    (edit_dt or (lambda _: None))(dt)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    code = main(["metrics", "coco", "--gt", str(gt_path), "--dt", str(dt_path), "--iou-type", iou_type])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("segbench: error: ")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    offender = gt_path if edit_gt else dt_path
    assert f"{offender}: " in lines[0] and entry in lines[0] and fix in lines[0], lines[0]


def test_bad_input_coco_consistent_files_pass(tmp_path):
    from segbench.metrics.coco import evaluate

    gt = _tiny_gt()
    gt["annotations"][0]["segmentation"] = _rle(np.pad(np.ones((8, 10), bool), ((3, 13), (2, 20))))
    assert evaluate(gt, _tiny_dt(gt), "segm")["AP"] > 0.9


# -- property tests (hypothesis): the COCO and TIFF validators ------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from segbench.errors import InputError  # noqa: E402
from segbench.metrics.coco_checks import check_detections, check_ground_truth, rle_string_counts  # noqa: E402
from segbench.metrics.isbi import validate_labels, validate_prediction  # noqa: E402

PROPERTY = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_bad_input_property_rle_decoder_matches_pycocotools(mask):
    rle = _rle(mask)
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    runs = np.diff(np.concatenate([[0], changes])).tolist()
    assert rle_string_counts(rle["counts"]) == runs
    assert sum(rle_string_counts(rle["counts"])) == mask.size


@PROPERTY
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_bad_input_property_rle_decoder_never_crashes(text):
    try:
        counts = rle_string_counts(text)
    except ValueError:
        return
    assert all(isinstance(c, int) and c >= 0 for c in counts)


@st.composite
def coco_files(draw) -> tuple[dict, list]:
    n_images = draw(st.integers(1, 4))
    sizes = [(draw(st.integers(1, 40)), draw(st.integers(1, 40))) for _ in range(n_images)]
    images = [{"id": i + 1, "width": w, "height": h} for i, (h, w) in enumerate(sizes)]
    cats = [{"id": c, "name": f"c{c}"} for c in draw(st.sets(st.integers(1, 90), min_size=1, max_size=3))]
    anns, dts = [], []
    for k in range(draw(st.integers(0, 6))):
        img = draw(st.sampled_from(images))
        box = [draw(st.floats(0, 10)), draw(st.floats(0, 10)), draw(st.floats(0, 30)), draw(st.floats(0, 30))]
        cat = draw(st.sampled_from(cats))["id"]
        segm = (
            _rle(draw(arrays(np.bool_, (img["height"], img["width"]))))
            if draw(st.booleans())
            else [[box[0], box[1], box[0] + box[2], box[1], box[0] + box[2], box[1] + box[3]]]
        )
        anns.append(
            {"id": 100 + k, "image_id": img["id"], "category_id": cat, "bbox": box, "segmentation": segm}
        )
        dts.append(
            {
                "image_id": img["id"],
                "category_id": cat,
                "bbox": list(box),
                "segmentation": copy.deepcopy(segm),
                "score": draw(st.floats(0, 1)),
            }
        )
    return {"images": images, "annotations": anns, "categories": cats}, dts


DEFECTS = (
    "duplicate_image",
    "image_size",
    "ann_category",
    "ann_duplicate",
    "ann_bbox",
    "ann_rle_size",
    "dt_category",
    "dt_bbox",
    "dt_polygon",
)


@PROPERTY
@given(coco_files(), st.sampled_from(DEFECTS), st.data())
def test_bad_input_property_coco_consistent_passes_and_any_defect_is_named(files, defect, data):
    gt, dts = files
    check_ground_truth(gt, "gt.json")
    check_detections(dts, "dt.json", gt, "segm", "segmentation")
    needs = {"ann": bool(gt["annotations"]), "dt": bool(dts), "ann_duplicate": len(gt["annotations"]) >= 2}
    kind = "ann_duplicate" if defect == "ann_duplicate" else defect.split("_")[0]
    if not needs.get(kind, True):
        return
    k = data.draw(st.integers(0, max(len(gt["annotations"]), 1) - 1))
    known_cats = {c["id"] for c in gt["categories"]}
    if defect == "duplicate_image":
        gt["images"].append(dict(gt["images"][0]))
    elif defect == "image_size":
        gt["images"][0]["width"] = data.draw(st.sampled_from([0, -3, 2.5, None, "32"]))
    elif defect == "ann_category":
        gt["annotations"][k]["category_id"] = max(known_cats) + 1
    elif defect == "ann_duplicate":
        gt["annotations"][-1]["id"] = gt["annotations"][0]["id"]
    elif defect == "ann_bbox":
        gt["annotations"][k]["bbox"][data.draw(st.sampled_from([2, 3]))] = -data.draw(st.floats(0.01, 5))
    elif defect == "ann_rle_size":
        img = next(i for i in gt["images"] if i["id"] == gt["annotations"][k]["image_id"])
        gt["annotations"][k]["segmentation"] = _rle(np.zeros((img["height"] + 1, img["width"]), bool))
    elif defect == "dt_category":
        dts[k]["category_id"] = max(known_cats) + 1
    elif defect == "dt_bbox":
        dts[k]["bbox"][2] = -data.draw(st.floats(0.01, 5))
    elif defect == "dt_polygon":
        dts[k]["segmentation"] = [[1.0, 2.0, 3.0, 4.0]]
    with pytest.raises(InputError) as info:
        check_ground_truth(gt, "gt.json")
        check_detections(dts, "dt.json", gt, "segm", "segmentation")
    message = str(info.value)
    assert message.startswith("gt.json: " if not defect.startswith("dt_") else "dt.json: ")
    assert "\n" not in message and ("annotation" in message or "image" in message or "detection" in message)


@PROPERTY
@given(
    arrays(
        np.uint8,
        st.tuples(st.integers(1, 3), st.integers(2, 8), st.integers(2, 8)),
        elements=st.sampled_from([0, 255]),
    )
)
def test_bad_input_property_binary_labels_pass(labels):
    assert validate_labels(labels).dtype == np.bool_


@PROPERTY
@given(
    arrays(
        np.uint8,
        st.tuples(st.integers(1, 3), st.integers(2, 8), st.integers(2, 8)),
        elements=st.sampled_from([0, 255]),
    ),
    st.integers(2, 254),
)
def test_bad_input_property_non_binary_labels_are_refused(labels, value):
    labels.flat[0], labels.flat[1] = 255, value
    with pytest.raises(InputError, match="labels must be exactly 0/255"):
        validate_labels(labels, "labels.tif")


@PROPERTY
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8)),
        elements=st.floats(0, 1, width=32),
    )
)
def test_bad_input_property_probabilities_pass(pred):
    assert validate_prediction(pred).shape == pred.shape


@PROPERTY
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8)),
        elements=st.floats(0, 1, width=32),
    ),
    st.one_of(st.floats(1.5, 1e6, width=32), st.floats(-1e6, -0.5, width=32), st.just(float("nan"))),
)
def test_bad_input_property_out_of_range_predictions_are_refused(pred, bad):
    pred.flat[0] = bad
    with pytest.raises(InputError, match="pred.tif"):
        validate_prediction(pred, "pred.tif")


@PROPERTY
@given(st.binary(max_size=400))
def test_bad_input_property_any_bytes_as_tiff_is_an_array_or_one_line(tmp_path_factory, blob):
    from segbench.cli.metrics import read_tiff

    path = tmp_path_factory.mktemp("tiff") / "x.tif"
    path.write_bytes(b"II*\x00" + blob)
    try:
        arr = read_tiff(str(path), "labels")
    except InputError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert arr.size > 0


# -- the Snakemake configuration is validated against workflow/schemas/config.schema.yaml ---------------
def _snakemake(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    return subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"scale": SCALE, "resluts": "results"}, "'resluts' was unexpected"),
        ({"scale": SCALE, "train_threads": "two"}, "'two' is not of type 'integer'"),
        (
            {
                "scale": SCALE,
                "methods": [{"method": "examples.dice_loss:dice_weighted_ce", "tabel": "unet_table1"}],
            },
            "'tabel' was unexpected",
        ),
    ],
    ids=["typo_key", "wrong_type", "typo_in_method"],
)
def test_snakemake_config_typo_fails_before_any_job(config, key, tmp_path):
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = _snakemake("-n", "reproduce_table2b", "--configfile", str(configfile))
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "Error validating config file" in out and key in out, out[-2000:]
    assert "Traceback" not in out


def test_snakemake_valid_config_passes_schema(tmp_path):
    configfile = tmp_path / "config.yaml"
    configfile.write_text(
        yaml.safe_dump(
            {
                "scale": SCALE,
                "results": str(tmp_path / "results"),
                "methods": [
                    {"method": "examples.dice_loss:dice_weighted_ce", "table": "unet_table1", "seeds": 1}
                ],
            }
        )
    )
    result = _snakemake("-n", "reproduce_table2b", "--configfile", str(configfile))
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]


# -- tampered data: MANIFEST hashes checked by prepare and train, dataset hash in every run's provenance -------
def _tamper(path: Path, keep_mtime: bool = False) -> bytes:
    """Flip one byte of ``path`` (same size); returns the original bytes."""
    original = path.read_bytes()
    st = path.stat()
    blob = bytearray(original)
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return original


def test_bad_input_tampered_synthetic_data_is_regenerated_by_prepare(tmp_path, capsys):
    root = data.prepare("em_smoke", tmp_path)
    target = root / "train-labels.tif"
    original = _tamper(target)
    assert main(["data", "prepare", "em_smoke", "--data-root", str(tmp_path)]) == 0
    assert target.read_bytes() == original  # regenerated, not "up to date"
    assert main(["data", "verify", "em_smoke", "--data-root", str(tmp_path)]) == 0


def test_synthetic_data_of_an_edited_registry_entry_is_regenerated_before_train(
    tmp_path, capsys, monkeypatch
):
    """A registry edit of a synthetic dataset's params (e.g. more training images) changes every run's
    config; the data on disk, generated with the old params, must not be trained on under the new config."""

    root = data.prepare("em_smoke", tmp_path / "data")
    old = data.read_manifest(root)
    entry = copy.deepcopy(data_registry.dataset_entry("em_smoke"))
    entry["params"]["slices"] = entry["params"]["slices"] + 2
    real_entry = data_registry.dataset_entry
    edited = lambda name: copy.deepcopy(entry) if name == "em_smoke" else real_entry(name)  # noqa: E731
    monkeypatch.setattr(data_registry, "dataset_entry", edited)
    monkeypatch.setattr(preparation, "dataset_entry", edited)
    identity = preparation.dataset_identity("em_smoke", tmp_path / "data")
    new = data.read_manifest(root)
    assert (
        new["params"] == entry["params"]
        and identity["sha256"] == new["dataset_sha256"] != old["dataset_sha256"]
    )
    warnings = [line for line in capsys.readouterr().err.splitlines() if "other params" in line]
    assert len(warnings) == 1 and str(root) in warnings[0]
    assert preparation.dataset_identity("em_smoke", tmp_path / "data") == identity  # now current: kept


def test_bad_input_tampered_synthetic_data_is_regenerated_before_train(tmp_path, capsys):
    root = data.prepare("em_smoke", tmp_path / "data")
    manifest = data.read_manifest(root)
    target = root / "train-volume.tif"
    original = _tamper(target)
    results = tmp_path / "results"
    argv = [
        "train",
        "--run",
        "threshold_isbi",
        "--scale",
        SCALE,
        "--results",
        str(results),
        "--data-root",
        str(tmp_path / "data"),
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("segbench: warning: ")]
    assert len(warnings) == 1 and str(target) in warnings[0] and "regenerating" in warnings[0], err
    assert target.read_bytes() == original
    record = json.loads((results / SCALE / "runs" / "threshold_isbi-seed0" / "train_done.json").read_text())
    assert record["provenance"]["dataset"] == {
        "name": "em_smoke",
        "sha256": manifest["dataset_sha256"],
        "files": 2,
    }


def test_bad_input_tampered_real_data_is_refused_by_prepare_and_train(tmp_path, monkeypatch, capsys):
    from segbench.data import preparation

    root = data.prepare("em_smoke", tmp_path / "data")
    entry = {**data.dataset_entry("em_smoke"), "source": "real", "downloads": []}
    real_entry = data_registry.dataset_entry
    as_real = lambda name: entry if name == "em_smoke" else real_entry(name)  # noqa: E731
    monkeypatch.setattr(preparation, "dataset_entry", as_real)
    monkeypatch.setattr(data_registry, "dataset_entry", as_real)  # the run's config says "real" too
    target = root / "train-volume.tif"
    _tamper(target)
    before = target.read_bytes()
    code = main(["data", "prepare", "em_smoke", "--data-root", str(tmp_path / "data")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("segbench: error: ")]
    assert code == 2 and len(lines) == 1 and str(target) in lines[0] and "restore the file" in lines[0], lines
    results = tmp_path / "results"
    code = main(
        [
            "train",
            "--run",
            "threshold_isbi",
            "--scale",
            SCALE,
            "--results",
            str(results),
            "--data-root",
            str(tmp_path / "data"),
        ]
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("segbench: error: ")]
    assert code == 2 and len(lines) == 1 and str(target) in lines[0], lines
    assert target.read_bytes() == before and not results.exists()  # refused, not repaired, nothing written


def test_bad_input_tampered_data_with_mtime_set_back_needs_verify(tmp_path):
    root = data.prepare("em_smoke", tmp_path)
    target = root / "train-labels.tif"
    time_before = target.stat().st_mtime_ns
    original = _tamper(target, keep_mtime=True)
    assert target.stat().st_mtime_ns == time_before
    assert main(["data", "prepare", "em_smoke", "--data-root", str(tmp_path)]) == 0
    assert target.read_bytes() != original  # the fast path (size + mtime) cannot see it: documented
    assert main(["data", "prepare", "em_smoke", "--data-root", str(tmp_path), "--verify"]) == 0
    assert target.read_bytes() == original


def test_bad_input_dataset_hash_in_provenance_not_in_config_hash(tmp_path):
    from segbench.provenance import config_hash
    from segbench.registry import resolve_run

    root = data.prepare("em_smoke", tmp_path / "data")
    digest = data.read_manifest(root)["dataset_sha256"]
    results = tmp_path / "results"
    for command in ("train", "evaluate"):
        assert (
            main(
                [
                    command,
                    "--run",
                    "threshold_isbi",
                    "--scale",
                    SCALE,
                    "--results",
                    str(results),
                    "--data-root",
                    str(tmp_path / "data"),
                ]
            )
            == 0
        )
    out = results / SCALE / "runs" / "threshold_isbi-seed0"
    expected_hash = config_hash(resolve_run("threshold_isbi", SCALE, 0))
    for name in ("config.json", "train_done.json", "metrics.json"):
        record = json.loads((out / name).read_text())
        assert record["provenance"]["dataset"]["sha256"] == digest, name
        assert record["config_hash"] == expected_hash, name
