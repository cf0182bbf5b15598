"""Faults through the real ``segbench`` entry point: one line (``segbench: error: ...``), the right exit
code, and nothing half-written, for every kind of write and for the faults of issue #20.

Fault injection: a full disk (ENOSPC) is injected at each kind of write (checkpoint through ``torch.save``,
which reports it as ``RuntimeError: [enforce fail at inline_container.cc] ... unexpected pos``; metrics;
table; report page; dataset file) and the test checks the one line names the file, and that neither the
target nor a temporary file nor a run folder that looks started is left behind.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from test_reporting_fixtures import build_results, write_run

from segbench import data
from segbench.cli import main, os_error_line
from segbench.registry import runs_for_tables

ENOSPC = os.strerror(errno.ENOSPC)
TORCH_ENOSPC = (
    "[enforce fail at inline_container.cc:672] . unexpected pos 15552 vs 15440\n"
    "frame #0: c10::ThrowEnforceNotMet(...)"
)


@pytest.fixture(scope="module")
def em_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    data.prepare("em_smoke", root)
    return root


def one_error_line(capsys) -> str:
    """The one `segbench: error:` line a bad input gives (and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("segbench: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def _no_tmp(root: Path) -> None:
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
    assert leftovers == [], leftovers


def _fsync_enospc(monkeypatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, ENOSPC)

    monkeypatch.setattr(os, "fsync", no_space)


def _run_args(command: str, run: str, results: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        command,
        "--run",
        run,
        "--scale",
        "smoke",
        "--results",
        str(results),
        "--data-root",
        str(data_root),
        "--device",
        "cpu",
        *extra,
    ]


# -- a full disk at each kind of write ---------------------------------------------------------------------
def test_fault_checkpoint_torch_save_runtime_error(em_data, tmp_path, monkeypatch, capsys):
    import torch

    def full_disk(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            Path(f).write_bytes(b"PK\x03\x04 half a zip")  # torch has started the file when the disk fills
        raise RuntimeError(TORCH_ENOSPC)

    monkeypatch.setattr(torch, "save", full_disk)
    results = tmp_path / "results"
    code = main(_run_args("train", "unet_isbi", results, em_data))
    line = one_error_line(capsys)
    out = results / "smoke" / "runs" / "unet_isbi-seed0"
    assert code == 1 and str(out / "checkpoint_00000002.pt") in line, line
    assert "unexpected pos" in line and "free space" in line
    assert not out.exists()  # nothing as if a run had started: no config.json, no log, no checkpoint
    _no_tmp(tmp_path)


def test_fault_metrics_enospc(em_data, tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    assert main(_run_args("train", "threshold_isbi", results, em_data)) == 0
    out = results / "smoke" / "runs" / "threshold_isbi-seed0"
    capsys.readouterr()
    _fsync_enospc(monkeypatch)
    code = main(_run_args("evaluate", "threshold_isbi", results, em_data))
    line = one_error_line(capsys)
    assert code == 1 and str(out / "metrics.json") in line and ENOSPC in line, line
    assert not (out / "metrics.json").exists() and (out / "train_done.json").exists()
    _no_tmp(tmp_path)


def test_fault_config_enospc_leaves_no_run_folder(em_data, tmp_path, monkeypatch, capsys):
    _fsync_enospc(monkeypatch)
    results = tmp_path / "results"
    code = main(_run_args("train", "threshold_isbi", results, em_data))
    line = one_error_line(capsys)
    out = results / "smoke" / "runs" / "threshold_isbi-seed0"
    assert code == 1 and str(out / "config.json") in line and ENOSPC in line, line
    assert not out.exists()
    _no_tmp(tmp_path)


def test_fault_table_enospc(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    for rs in runs_for_tables(["table2b"], "smoke"):
        write_run(results / "smoke" / "runs" / rs.run_id, rs.run, rs.seed, "smoke")
    _fsync_enospc(monkeypatch)
    code = main(["table", "table2b", "--scale", "smoke", "--results", str(results)])
    line = one_error_line(capsys)
    tables = results / "smoke" / "tables"
    assert code == 1 and str(tables / "table2b.json") in line and "free space" in line, line
    assert not any(tables.glob("table2b.*"))
    _no_tmp(tmp_path)


def test_fault_report_enospc(tmp_path, monkeypatch, capsys):
    results, reports = tmp_path / "results", tmp_path / "reports"
    build_results(results, ("table2b",), "mini")
    _fsync_enospc(monkeypatch)
    code = main(
        ["report", "--scale", "mini", "--no-figures", "--results", str(results), "--out", str(reports)]
    )
    line = one_error_line(capsys)
    assert code == 1 and str(reports / "mini") in line and ".html" in line and ENOSPC in line, line
    assert not list(reports.rglob("*.html"))
    _no_tmp(tmp_path)


@pytest.mark.parametrize(("dataset", "writer"), [("em_smoke", "tiff"), ("shapes_smoke", "png")])
def test_fault_dataset_enospc(dataset, writer, tmp_path, monkeypatch, capsys):
    from PIL import Image

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, ENOSPC)  # as the libraries raise it: no file name

    if writer == "tiff":
        monkeypatch.setattr(tifffile, "imwrite", no_space)
    else:
        monkeypatch.setattr(Image.Image, "save", no_space)
    root = tmp_path / "data"
    code = main(["data", "prepare", dataset, "--data-root", str(root)])
    line = one_error_line(capsys)
    assert code == 1 and f"{root / dataset}/" in line and ENOSPC in line and "free space" in line, line
    assert ".tmp-" not in line  # the file as it would be named in the dataset, not the scratch folder
    assert not (root / dataset).exists()
    _no_tmp(tmp_path)


# -- faults that used to print a traceback, each checked before anything is written -------------------------
@pytest.mark.parametrize(
    ("extra", "named", "fix"),
    [
        (["--seed", "-1"], "--seed -1", "use --seed 0"),
        (["--device", "banana"], "--device 'banana'", "expected cpu, cuda"),
        (["--device", "cuda"], "--device cuda", "use --device cpu"),
        (["--device", "cuda:7"], "--device cuda:7", "use --device cpu"),
    ],
    ids=["negative_seed", "device_banana", "device_cuda_without_gpu", "device_cuda_index"],
)
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_fault_bad_run_argument_is_one_line_and_writes_nothing(
    command, extra, named, fix, tmp_path, monkeypatch, capsys
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine has no GPU (CI may)
    argv = _run_args(command, "r50_c4", tmp_path / "results", tmp_path / "data")
    argv = [a for a in argv if a not in ("--device", "cpu")] + extra
    code = main(argv)
    line = one_error_line(capsys)
    assert code == 2 and named in line and fix in line, line
    assert list(tmp_path.iterdir()) == []  # no results folder, no run folder, no config.json


def test_fault_compare_with_an_unknown_device_writes_nothing(tmp_path, capsys):
    code = main(
        [
            "compare",
            "--method",
            "examples.dice_loss:dice_weighted_ce",
            "--table",
            "unet_table1",
            "--seeds",
            "1",
            "--scale",
            "smoke",
            "--results",
            str(tmp_path / "r"),
            "--device",
            "banana",
        ]
    )
    assert code == 2 and "--device 'banana'" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


BAD_PLUGIN = '''
import torch.nn.functional as F


def {name}(logits, target, weights):
    """Passes the contract probe (a leaf tensor of logits) and fails on a real model's output."""
    if not logits.is_leaf:
        raise ValueError("shape mismatch in my new loss")
    return (F.cross_entropy(logits, target, reduction="none") * weights).mean()


{name}.segbench_kind = "unet_loss"
'''


def test_fault_plugin_that_fails_in_training_under_compare(em_data, tmp_path, capsys):
    plugin = tmp_path / "bad_loss.py"
    plugin.write_text(BAD_PLUGIN.format(name="fault_loss_in_training"))
    results = tmp_path / "results"
    spec = f"{plugin}:fault_loss_in_training"
    code = main(
        [
            "compare",
            "--method",
            spec,
            "--table",
            "unet_table1",
            "--seeds",
            "1",
            "--scale",
            "smoke",
            "--results",
            str(results),
            "--data-root",
            str(em_data),
            "--device",
            "cpu",
        ]
    )
    line = one_error_line(capsys)
    assert code == 1, line
    assert repr(spec) in line and "ValueError" in line and "shape mismatch in my new loss" in line
    assert "during training" in line and "fix the plugin" in line
    raise_at = next(i for i, text in enumerate(plugin.read_text().splitlines(), 1) if "raise" in text)
    assert f"{plugin}:{raise_at}" in line, line  # the file:line in the plugin's code (#36)
    runs = results / "smoke" / "runs"
    assert [p.name for p in runs.iterdir() if not p.name.startswith(".")] == []  # no half-started method run
    assert not (results / "smoke" / "compare").exists()


# -- misleading messages --------------------------------------------------------------------------------------
def test_fault_segbench_data_pointing_at_a_file(tmp_path, monkeypatch, capsys):
    not_a_folder = tmp_path / "data.tar"
    not_a_folder.write_bytes(b"x")
    monkeypatch.setenv("SEGBENCH_DATA", str(not_a_folder))
    code = main(["data", "prepare", "em_smoke"])
    line = one_error_line(capsys)
    assert code == 2 and f"SEGBENCH_DATA={not_a_folder}" in line and "not a folder" in line, line
    assert "free space" not in line


@pytest.mark.parametrize(
    ("err", "fix"),
    [
        (errno.ENOSPC, "free space"),
        (errno.EACCES, "permissions"),
        (errno.EROFS, "read-only"),
        (errno.ENOTDIR, "is a file, not a folder"),
    ],
    ids=["enospc", "eacces", "erofs", "enotdir"],
)
def test_fault_os_error_fix_matches_the_reason(err, fix):
    line = os_error_line(OSError(err, os.strerror(err), "/some/file"))
    assert line.startswith("/some/file: ") and fix in line
    assert ("free space" in line) == (err == errno.ENOSPC)


@pytest.mark.parametrize(("value", "what"), [(0, "membrane (0)"), (255, "cell (255)")])
def test_fault_one_class_labels_warn(value, what, tmp_path, capsys):
    labels, pred = tmp_path / "labels.tif", tmp_path / "pred.tif"
    tifffile.imwrite(labels, np.full((2, 16, 16), value, np.uint8))
    tifffile.imwrite(pred, np.random.default_rng(0).random((2, 16, 16)).astype(np.float32))
    assert main(["metrics", "isbi", "--pred", str(pred), "--labels", str(labels), "--json"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("segbench: warning: ")]
    assert len(warnings) == 1 and str(labels) in warnings[0] and what in warnings[0], err
    assert "Rand and warping errors are trivially 0" in warnings[0]


def test_fault_two_class_labels_do_not_warn(tmp_path, capsys):
    labels, pred = tmp_path / "labels.tif", tmp_path / "pred.tif"
    lab = np.full((1, 16, 16), 255, np.uint8)
    lab[:, 8, :] = 0
    tifffile.imwrite(labels, lab)
    tifffile.imwrite(pred, np.random.default_rng(0).random((1, 16, 16)).astype(np.float32))
    assert main(["metrics", "isbi", "--pred", str(pred), "--labels", str(labels), "--json"]) == 0
    assert "warning" not in capsys.readouterr().err
