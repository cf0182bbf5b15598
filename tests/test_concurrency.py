"""Concurrent jobs on one results tree never corrupt each other.

Snakemake locks a working directory, so two Snakemake processes do not share one; the guarantee that
matters is at the level below, which Snakemake's parallel jobs (and people running ``segbench`` by hand)
rely on: (a) concurrent ``segbench train`` of different runs into one results tree give the same bytes
as sequential runs; (b) concurrent writers of one file through ``write_json_atomic`` leave a valid file
from exactly one writer, and a reader never sees a mix or a torn file; (c) concurrent ``segbench table``
of the same table leave one valid table.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from segbench import data
from segbench.io import read_json, write_json_atomic

pytestmark = pytest.mark.slow

SEGBENCH = str(Path(sys.executable).with_name("segbench"))
SCALE = "smoke"
RUNS = ("r50_c4", "r50_c4_softmax")  # the two runs of table2b
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _argv(command: str, run: str, results: Path, data_root: Path) -> list[str]:
    return [
        SEGBENCH,
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


def _all_ok(procs: list[subprocess.Popen]) -> None:
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]


def _popen(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def shared_tree(tmp_path_factory) -> dict[str, Path]:
    """Both runs trained at the same time into one results tree, then evaluated at the same time."""
    root = tmp_path_factory.mktemp("concurrent")
    data_root = root / "data"
    data.prepare("shapes_smoke", data_root)
    results = root / "results"
    for command in ("train", "evaluate"):
        _all_ok([_popen(_argv(command, run, results, data_root)) for run in RUNS])
    return {"root": root, "data": data_root, "results": results}


def _run_dir(results: Path, run: str) -> Path:
    return results / SCALE / "runs" / f"{run}-seed0"


def test_concurrent_training_of_different_runs_equals_sequential(shared_tree):
    sequential = shared_tree["root"] / "sequential"
    for run in RUNS:
        _all_ok([_popen(_argv("train", run, sequential, shared_tree["data"]))])
    for run in RUNS:
        out, ref = _run_dir(shared_tree["results"], run), _run_dir(sequential, run)
        assert read_json(out / "config.json")["config"]["run"] == run
        assert read_json(out / "train_done.json")["run_id"] == f"{run}-seed0"
        final = torch.load(out / "model_final.pt", map_location="cpu", weights_only=True)
        assert final["run"] == run
        expected = torch.load(ref / "model_final.pt", map_location="cpu", weights_only=True)["model"]
        differing = [k for k in expected if not torch.equal(expected[k], final["model"][k])]
        assert differing == [], f"{run}: weights differ from a sequential run: {differing[:5]}"
        assert read_json(out / "metrics.json")["run"] == run
    assert list(shared_tree["results"].rglob("*.tmp")) == []


# -- (b) many writers, one file ------------------------------------------------------------------------
WRITES = 60
PAYLOAD = 5000  # entries per document (~100 KB): large enough that a non-atomic write would be seen torn


def _document(writer: int, k: int) -> dict:
    return {"writer": writer, "k": k, "values": [writer] * PAYLOAD}


def _hammer(path: str, writer: int) -> None:
    for k in range(WRITES):
        write_json_atomic(path, _document(writer, k))


def _check_document(doc: dict) -> int:
    writer = doc["writer"]
    assert doc["values"] == [writer] * PAYLOAD, "a document mixes writers"
    return writer


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_concurrent_atomic_writers_leave_one_whole_document(kind, tmp_path):
    target = tmp_path / "shared.json"
    write_json_atomic(target, _document(-1, 0))
    if kind == "processes":
        ctx = multiprocessing.get_context("spawn")
        workers = [ctx.Process(target=_hammer, args=(str(target), w)) for w in range(3)]
    else:
        workers = [threading.Thread(target=_hammer, args=(str(target), w)) for w in range(3)]
    for w in workers:
        w.start()
    seen: set[int] = set()
    reads = 0
    while any(w.is_alive() for w in workers):  # a reader racing the writers never sees a torn file
        seen.add(_check_document(json.loads(target.read_text(encoding="utf-8"))))
        reads += 1
    for w in workers:
        w.join(timeout=120)
        if kind == "processes":
            assert w.exitcode == 0
    final = json.loads(target.read_text(encoding="utf-8"))
    assert _check_document(final) in {0, 1, 2} and final["k"] == WRITES - 1
    assert reads > 0 and seen & {0, 1, 2}, "the reader never overlapped the writers"
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temporary file left


# -- (c) the same table, written by several processes at once ---------------------------------------
def test_concurrent_table_writes_give_one_valid_table(shared_tree):
    results = shared_tree["results"]
    argv = [SEGBENCH, "table", "table2b", "--scale", SCALE, "--results", str(results)]
    _all_ok([_popen(argv) for _ in range(3)])
    tables = results / SCALE / "tables"
    table = read_json(tables / "table2b.json")
    assert [row["id"] for row in table["rows"]] == ["softmax", "sigmoid"]
    header, *rows = csv.reader((tables / "table2b.csv").read_text(encoding="utf-8").splitlines())
    columns = len(table["columns"])  # AP, AP50, AP75, AR, ARbb
    assert len(rows) == 2 * columns and all(len(row) == len(header) for row in rows)  # 2 rows x columns
    assert "softmax" in (tables / "table2b.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in tables.iterdir()) == ["table2b.csv", "table2b.json", "table2b.md"]
