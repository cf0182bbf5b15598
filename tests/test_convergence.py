"""The "converged" criterion (segbench.trainlog.loss_convergence) and the column the table assembler
writes from it (JSON, CSV, Markdown)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
from test_tables import fake_metrics

from segbench.io import append_jsonl
from segbench.tables.aggregate import converged_cell
from segbench.tables.assemble import assemble_table
from segbench.tables.render import to_csv, to_markdown
from segbench.trainlog import TRAIN_LOG, log_convergence, loss_convergence


def test_a_loss_that_levelled_off_converged():
    losses = [2.0 - 0.01 * i for i in range(80)] + [1.0] * 20  # flat over the last 20 %
    result = loss_convergence(losses)
    assert result["converged"] is True and result["relative_change"] == pytest.approx(0.0)
    assert result["window"] == 10 and result["iterations"] == 100


def test_a_loss_still_falling_has_not_converged():
    losses = [1.0 / (1 + 0.01 * i) for i in range(100)]  # last 10 % ~ 5 % below the 10 % before
    result = loss_convergence(losses)
    before, last = sum(losses[80:90]) / 10, sum(losses[90:]) / 10
    assert result["converged"] is False and result["relative_change"] == pytest.approx(last / before - 1)
    assert result["relative_change"] == pytest.approx(-0.051, abs=1e-3)


def test_the_tolerance_is_three_percent_either_way():
    assert loss_convergence([1.0] * 90 + [1.029] * 10)["converged"] is True  # rising by 2.9 %
    assert loss_convergence([1.0] * 90 + [1.031] * 10)["converged"] is False  # rising by 3.1 %
    assert loss_convergence([1.0] * 90 + [0.969] * 10)["converged"] is False  # falling by 3.1 %


def test_too_short_or_non_finite_logs_are_not_measurable():
    assert loss_convergence([1.0, 0.9, 0.8, 0.7]) == {
        "converged": None,
        "relative_change": None,
        "window": 0,
        "iterations": 4,
    }
    assert loss_convergence([1.0] * 19)["converged"] is None  # windows of 1 iteration: too short
    assert loss_convergence([1.0] * 20)["converged"] is True
    assert loss_convergence([1.0] * 18 + [float("nan")] * 2)["converged"] is None


def test_log_convergence_reads_the_train_log(tmp_path):
    assert log_convergence(tmp_path / TRAIN_LOG)["converged"] is None  # no log (a classical run)
    path = tmp_path / TRAIN_LOG
    append_jsonl(path, {"event": "schedule", "iterations": 40})
    for i in range(1, 41):
        append_jsonl(path, {"iteration": i, "loss": 2.0 if i <= 36 else 1.0, "lr": 0.01})
    result = log_convergence(path)
    assert result["iterations"] == 40 and result["converged"] is False
    assert result["relative_change"] == pytest.approx(-0.5)  # iterations 33-36 at 2.0, 37-40 at 1.0


def test_the_table_module_does_not_import_torch():
    import subprocess

    code = "import sys, segbench.tables.assemble; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_converged_cell_texts():
    yes, no, unknown = (
        {"converged": True, "relative_change": -0.012},
        {"converged": False, "relative_change": -0.1},
        {"converged": None, "relative_change": None},
    )
    assert converged_cell([yes, yes])["text"] == "yes (-1.2%)"
    assert converged_cell([no])["text"] == "no (-10.0%)"
    assert converged_cell([yes, yes, no])["text"] == "2/3 (-4.1%)"
    assert converged_cell([unknown, unknown])["text"] == "n/a"
    assert converged_cell([])["text"] == "-"


def _write_log(run_dir: Path, losses: list[float]) -> None:
    for i, loss in enumerate(losses, start=1):
        append_jsonl(run_dir / TRAIN_LOG, {"iteration": i, "loss": loss})


def test_every_table_format_has_the_converged_column(tmp_path):
    fake_metrics(tmp_path, "mini", ["table2c"], lambda run, seed: 0.3)
    runs = tmp_path / "mini" / "runs"
    flat, falling = [1.0] * 50, [2.0 - 0.02 * i for i in range(50)]
    for seed, losses in enumerate((flat, flat, falling)):
        _write_log(runs / f"r50_c4-seed{seed}", losses)
    for seed in range(3):
        _write_log(runs / f"r50_c4_roipool-seed{seed}", falling)
    table = assemble_table("table2c", "mini", tmp_path)
    rows = {r["id"]: r for r in table["rows"]}
    assert rows["roialign_avg"]["converged"]["text"].startswith("2/3 (")
    assert rows["roialign_avg"]["converged"]["measured"] == 3
    assert rows["roipool"]["converged"]["text"].startswith("no (")
    assert rows["roiwarp_max"]["converged"]["text"] == "n/a"  # no loss log
    assert table["convergence_rule"].startswith("the mean loss of the last 10%")
    json.dumps(table, allow_nan=False)  # stays strict JSON
    header, *lines = list(csv.reader(io.StringIO(to_csv(table))))
    assert header[-1] == "converged"
    by_row = {line[2]: line[-1] for line in lines}
    assert by_row["roipool"].startswith("no (") and by_row["roiwarp_max"] == "n/a"
    markdown = to_markdown(table)
    assert "| row | AP | AP50 | AP75 | AR | ARbb | converged |" in markdown
    roialign = next(
        line for line in markdown.splitlines() if line.startswith("| RoIAlign (aligned, bilinear, ave)")
    )
    assert roialign.rstrip(" |").endswith(rows["roialign_avg"]["converged"]["text"])
