"""Bad input through the real ``segbench`` entry point: every case exits non-zero with ONE line that names
the offending file (or entry) and says what to do, and leaves no result file behind as if complete.

Each case builds its input in ``tmp_path`` (smoke-scale synthetic data, a smoke run trained once per
session, copies of the registry), runs ``segbench.cli.main`` in-process and checks stderr, the exit code,
the files that must not exist afterwards, the files that must be unchanged, and that no temporary file
(``.<name>.*.tmp``) is left anywhere under ``tmp_path``.
"""

from __future__ import annotations

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
            argv = [command, "--run", run, "--scale", SCALE, "--results", str(results),
                    "--data-root", str(data_root), "--device", "cpu"]
            assert main(argv) == 0, argv
    return {"data": data_root, "results": results}


def run_dir(results: Path, run: str) -> Path:
    return results / SCALE / "runs" / f"{run}-seed0"


# -- the case table -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    argv: list[str]
    names: list[str]                 # substrings the error line must contain (the offending file / entry)
    fix: str                         # the "what to do" part the error line must contain
    code: int = 2
    absent: list[Path] = dataclasses.field(default_factory=list)     # must not exist afterwards
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
        return [command, "--run", run, "--scale", SCALE, "--results", str(results or self.tmp / "results"),
                "--data-root", str(self.data()), "--device", "cpu"]

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
    out = run_dir(ctx.tmp / "results", RUN_A)
    return Case(ctx.run_args("train"), [offender], fix,
                absent=[out / "train_done.json", out / "model_final.pt", out / "checkpoint_00000002.pt"])


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
    return _metrics_coco_case(ctx, lambda d: d["annotations"][0].update(image_id=424242),
                              "add the image or drop the annotation")


def case_metrics_coco_polygon_two_points(ctx: Ctx) -> Case:
    return _metrics_coco_case(ctx, lambda d: d["annotations"][0].update(segmentation=[[1, 1, 4, 4]]),
                              "drop that polygon")


def case_metrics_coco_results_not_a_list(ctx: Ctx) -> Case:
    gt = ctx.smoke["data"] / "shapes_smoke" / "annotations" / "instances_val.json"
    dt = ctx.tmp / "dt.json"
    dt.write_text(json.dumps({"annotations": []}))
    return Case(["metrics", "coco", "--gt", str(gt), "--dt", str(dt), "--iou-type", "bbox"], [str(dt)],
                "expected a list of detections")


# ISBI TIFFs -----------------------------------------------------------------------------------------
def _isbi_pair(ctx: Ctx, pred: np.ndarray | None = None, labels: np.ndarray | None = None) -> tuple[Path, Path]:
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
    return Case(ctx.run_args("train"), [str(path), f"runs/{RUN_A}/model", "roi_bogus"], "fix that entry",
                absent=[out / "train_done.json", out / "model_final.pt"])


def case_registry_unknown_arch(ctx: Ctx) -> Case:
    path = ctx.registry_copy(lambda r: r["runs"][RUN_A]["model"].update(arch="c6"))
    return Case(ctx.run_args("train"), [str(path), f"runs/{RUN_A}/model/arch"], "fix that entry",
                absent=[ctx.tmp / "results"])


def case_unknown_run(ctx: Ctx) -> Case:
    return Case(ctx.run_args("train", run="r51_c4"), ["'r51_c4'"], "segbench list --runs",
                absent=[ctx.tmp / "results"])


def case_unknown_scale(ctx: Ctx) -> Case:
    argv = ctx.run_args("train")
    argv[argv.index(SCALE)] = "huge"
    return Case(argv, ["'huge'"], "choose one of", absent=[ctx.tmp / "results"])


def case_unknown_table(ctx: Ctx) -> Case:
    results = ctx.results()
    return Case(["table", "table9z", "--scale", SCALE, "--results", str(results)], ["'table9z'"],
                "segbench list", absent=[results / SCALE / "tables"])


def case_unknown_dataset(ctx: Ctx) -> Case:
    return Case(["data", "verify", "shapes_nope", "--data-root", str(ctx.data())], ["'shapes_nope'"],
                "known datasets")


# tables ------------------------------------------------------------------------------------------------
def case_table_missing_metrics(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A, RUN_B)
    missing = run_dir(results, RUN_B) / "metrics.json"
    missing.unlink()
    tables = results / SCALE / "tables"
    return Case(["table", "table2b", "--scale", SCALE, "--results", str(results)], [str(missing)],
                f"segbench train --run {RUN_B}", absent=[tables / "table2b.json", tables / "table2b.md"])


def case_table_malformed_metrics(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A, RUN_B)
    bad = run_dir(results, RUN_A) / "metrics.json"
    bad.write_text(bad.read_text()[:-40])
    tables = results / SCALE / "tables"
    return Case(["table", "table2b", "--scale", SCALE, "--results", str(results)], [str(bad)],
                "regenerate or fix the file", absent=[tables / "table2b.json", tables / "table2b.csv"])


# data: checksums and downloads --------------------------------------------------------------------------
def case_data_checksum_mismatch(ctx: Ctx) -> Case:
    root = ctx.data()
    tampered = root / "shapes_smoke" / "images" / "val" / "000001000002.png"
    blob = bytearray(tampered.read_bytes())
    blob[-20] ^= 0xFF
    tampered.write_bytes(bytes(blob))
    return Case(["data", "verify", "shapes_smoke", "--data-root", str(root)], [str(tampered)],
                "segbench data prepare shapes_smoke --force")


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
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
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
    return Case(["data", "download", "toy_em", "--data-root", str(root)], ["toy-volume.tif"],
                fix, absent=[root / "toy_em" / "toy-volume.tif", root / "toy_em" / "MANIFEST.json"])


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
    return Case(ctx.run_args("train", run=RUN_B, results=results), [str(foreign), f"{RUN_A!r}", f"{RUN_B!r}"],
                "delete it or point the run at the right directory",
                absent=[out / "train_done.json", out / "model_final.pt", out / "checkpoint_00000004.pt"],
                unchanged=[foreign])


def case_checkpoint_corrupt(ctx: Ctx) -> Case:
    results = ctx.results()
    out = run_dir(results, RUN_A)
    out.mkdir(parents=True)
    corrupt = out / "checkpoint_00000002.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip archive" * 10)
    return Case(ctx.run_args("train", results=results), [str(corrupt)], "delete it to retrain",
                absent=[out / "train_done.json", out / "model_final.pt", out / "checkpoint_00000004.pt"])


def case_final_model_corrupt(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A)
    out = run_dir(results, RUN_A)
    (out / "metrics.json").unlink()
    final = out / "model_final.pt"
    final.write_bytes(final.read_bytes()[:1000])
    return Case(ctx.run_args("evaluate", results=results), [str(final)], "delete it to retrain",
                absent=[out / "metrics.json"])


# disk full -----------------------------------------------------------------------------------------------
def _disk_full(ctx: Ctx) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ctx.monkeypatch.setattr(os, "fsync", no_space)


def case_disk_full_new_table(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A, RUN_B)
    _disk_full(ctx)
    target = results / SCALE / "tables" / "table2b.json"
    return Case(["table", "table2b", "--scale", SCALE, "--results", str(results)],
                [str(target), os.strerror(errno.ENOSPC)], "free space or choose another --results", code=1,
                absent=[target, target.with_suffix(".csv"), target.with_suffix(".md")])


def case_disk_full_keeps_old_table(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A, RUN_B)
    assert main(["table", "table2b", "--scale", SCALE, "--results", str(results)]) == 0
    target = results / SCALE / "tables" / "table2b.json"
    _disk_full(ctx)
    return Case(["table", "table2b", "--scale", SCALE, "--results", str(results)],
                [str(target), os.strerror(errno.ENOSPC)], "free space or choose another --results", code=1,
                unchanged=[target, target.with_suffix(".csv"), target.with_suffix(".md")])


def case_disk_full_metrics(ctx: Ctx) -> Case:
    results = ctx.results(RUN_A)
    out = run_dir(results, RUN_A)
    (out / "metrics.json").unlink()
    _disk_full(ctx)
    return Case(ctx.run_args("evaluate", results=results), [str(out), os.strerror(errno.ENOSPC)],
                "free space or choose another --results", code=1, absent=[out / "metrics.json"])


CASES = {name[len("case_"):]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


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
    errors = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("segbench: error: ")]
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


# -- the Snakemake configuration is validated against workflow/schemas/config.schema.yaml ---------------
def _snakemake(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    return subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("config", "key"), [
    ({"scale": SCALE, "resluts": "results"}, "'resluts' was unexpected"),
    ({"scale": SCALE, "train_threads": "two"}, "'two' is not of type 'integer'"),
    ({"scale": SCALE, "methods": [{"method": "examples.dice_loss:dice_weighted_ce", "tabel": "unet_table1"}]},
     "'tabel' was unexpected"),
], ids=["typo_key", "wrong_type", "typo_in_method"])
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
    configfile.write_text(yaml.safe_dump({"scale": SCALE, "results": str(tmp_path / "results"),
                                          "methods": [{"method": "examples.dice_loss:dice_weighted_ce",
                                                       "table": "unet_table1", "seeds": 1}]}))
    result = _snakemake("-n", "reproduce_table2b", "--configfile", str(configfile))
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
