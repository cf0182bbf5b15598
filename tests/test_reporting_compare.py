"""Comparison pages (``reports/<scale>/compare/<table>--<method>.html``) from a fake comparison record with
the keys ``segbench compare`` writes, its comparisons judged by the real claims engine
(:func:`segbench.compare.method_comparisons`): the page, its links from the index and the table page, the
per-seed dots, the training curves, escaping, staleness and a broken record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from test_reporting_fixtures import SCALE, XSS, XSS_IMG, build_results

from segbench.compare import COMPARE_RULE, _row_runs_per_column, baseline_rows, method_comparisons
from segbench.errors import InputError
from segbench.io import sha256_file
from segbench.registry import get_table
from segbench.reporting.html import build_pages
from segbench.tables.aggregate import seed_summary

TABLE = "unet_table1"
NAME = "dice_bce"
STEM = f"{TABLE}--{NAME}"
SEEDS = [0, 1, 2]


def write_method_run(run_dir: Path, run: str, seed: int, values: dict[str, float]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"run": run, "seed": seed, "config": {"run": run}}))
    log = [{"iteration": i, "loss": 1.5 / (i + 1) + 0.02 * seed} for i in range(0, 50, 5)]
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    record = {"run_id": run_dir.name, "config_hash": f"hash{seed}", "metrics": {"isbi": values}}
    (run_dir / "metrics.json").write_text(json.dumps(record))


def fake_comparison(results: Path, *, logs: bool = True) -> Path:
    """``results/<scale>/compare/unet_table1--dice_bce.json`` as segbench compare writes it, over the fake
    baseline runs of :func:`build_results`; the method lowers every error of the U-Net row by 10-30 %."""
    table = get_table(TABLE)
    columns = table["columns"]
    assembled = json.loads((results / SCALE / "tables" / f"{TABLE}.json").read_text())
    by_id = {row["id"]: row for row in assembled["rows"]}
    rows = []
    for row in baseline_rows(table):
        values = by_id[row["id"]]["values"]
        rows.append(
            {
                "id": row["id"],
                "label": row["label"],
                "runs": sorted(set(_row_runs_per_column(row, columns).values())),
                "reference_only": False,
                "method": False,
                "values": {
                    c: {**seed_summary(values[c]["per_seed"]), "paper": values[c]["paper"], "delta": None}
                    for c in columns
                },
            }
        )
    base = rows[0]
    assert base["id"] == "unet"
    method_run = f"{base['runs'][0]}+{NAME}"
    per_seed = {
        c: [v * (0.9 - 0.1 * k) for k, v in enumerate(base["values"][c]["per_seed"])] for c in columns
    }
    method_row = {
        "id": f"method_{NAME}",
        "label": f"{NAME} {XSS} (new unet_loss, on {base['label']})",
        "runs": [method_run],
        "reference_only": False,
        "method": True,
        "method_spec": f"evil_pkg.losses:{NAME}",
        "values": {c: {**seed_summary(v), "paper": None, "delta": None} for c, v in per_seed.items()},
    }
    for seed in SEEDS:
        values = {c: per_seed[c][seed] for c in columns}
        run_dir = results / SCALE / "runs" / f"{method_run}-seed{seed}"
        write_method_run(run_dir, method_run, seed, values)
        if not logs:
            (run_dir / "train_log.jsonl").unlink()
    comparisons = method_comparisons(table, rows, method_row)
    runs = {}
    for run_id in sorted(
        f"{run}-seed{s}" for row in [*rows, method_row] for run in row["runs"] for s in SEEDS
    ):
        metrics = results / SCALE / "runs" / run_id / "metrics.json"
        runs[run_id] = {
            "config_hash": json.loads(metrics.read_text())["config_hash"],
            "metrics_file": f"results/{SCALE}/runs/{run_id}/metrics.json",
            "metrics_sha256": sha256_file(metrics),
        }
    record = {
        "table": STEM,
        "compared_table": TABLE,
        "title": f"{assembled['title']}: {NAME} against the baselines {XSS_IMG}",
        "paper": "unet",
        "citation": assembled["citation"],
        "scale": SCALE,
        "scale_description": assembled["scale_description"],
        "paper_split": assembled["split"],
        "evaluated_on": assembled["evaluated_on"],
        "cross_validation_folds": None,
        "sample_words": {"many": "seeds", "one": "seed"},
        "columns": columns,
        "metrics": table["metrics"],
        "lower_is_better": True,
        "method": {
            "spec": f"evil_pkg.losses:{NAME} {XSS}",
            "kind": "unet_loss",
            "name": NAME,
            "identity": {"distribution": "evil-pkg", "version": "0.1", "source_sha256": "0123abcd"},
        },
        "base_row": "unet",
        "seeds": SEEDS,
        "statistics": COMPARE_RULE,
        "rows": [*rows, method_row],
        "comparisons": comparisons,
        "directions": [],
        "runs": runs,
        "provenance": {
            "git_commit": "abc1234",
            "device": "cpu (test)",
            "created_utc": "2025-01-01T00:00:00Z",
        },
    }
    out = results / SCALE / "compare" / f"{STEM}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record))
    for ext in ("md", "csv"):
        out.with_suffix(f".{ext}").write_text("fake\n")
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("compare-report")
    results = tmp / "results"
    build_results(results, tables=(TABLE, "table2b"))
    record = fake_comparison(results)
    paths = build_pages(SCALE, results, tmp / "reports")
    pages = tmp / "reports" / SCALE
    assert paths.comparisons == (pages / "compare" / f"{STEM}.html",)
    return {"results": results, "pages": pages, "record": record}


def page(report: dict[str, Path]) -> str:
    return (report["pages"] / "compare" / f"{STEM}.html").read_text()


def test_index_and_compared_table_page_link_to_the_comparison(report: dict[str, Path]) -> None:
    href = f'href="compare/{STEM}.html"'
    index = (report["pages"] / "index.html").read_text()
    section = index[index.index('id="compared-methods"') :]
    assert "Compared methods" in section and href in section
    table = (report["pages"] / f"{TABLE}.html").read_text()
    assert 'id="compared-methods"' in table and href in table
    assert "compare/" not in (report["pages"] / "table2b.html").read_text()  # another table: no link


def test_comparison_page_links_resolve(report: dict[str, Path]) -> None:
    html = page(report)
    folder = report["pages"] / "compare"
    assert f'id="compared-table" href="../{TABLE}.html"' in html and 'href="../index.html"' in html
    hrefs = re.findall(r'href="([^"#]+)"', html)
    assert any(h.endswith(f"{STEM}.json") for h in hrefs)
    assert any(h.endswith("%2Bdice_bce-seed0/train_log.jsonl") for h in hrefs)
    for h in hrefs:
        assert not re.match(r"^[a-z]+:", h) and (folder / unquote(h)).exists(), f"dead link {h}"


def test_comparison_page_shows_rows_claims_dots_and_curves(report: dict[str, Path]) -> None:
    html = page(report)
    record = json.loads(report["record"].read_text())
    results = html[html.index('id="compare-table"') : html.index('id="directions"')]
    for row in record["rows"]:
        assert f">{row['label']}" in results.replace(XSS, "&lt;script&gt;alert(1)&lt;/script&gt;") or (
            row["method"] and "&lt;script&gt;" in results
        )
    assert results.count('class="cell"') == 4 * 3  # three baselines and the method, three metrics each
    assert results.count('<svg class="dots"') == 4 * 3  # per-seed dots in every cell
    assert re.search(r"\d ± [\d.e-]+</span> <span class=\"n\">\(3\)</span>", results)
    claims = html[html.index('id="comparisons"') : html.index('id="curves"')]
    assert claims.count('<tr class="claim verdict-') == len(record["comparisons"]) == 9
    assert claims.count('<svg class="dots"') == 9  # the gap per seed, its interval and zero
    verdicts = {c["verdict"] for c in record["comparisons"]}
    for word in verdicts:
        assert f">{word}</span>" in claims
    assert "band-good" in claims  # the method is better than the threshold at least: green
    assert "lower is better; a gap &gt; 0 means the method&#39;s warping_error is lower" in html
    assert "Holm" in html and "90% interval" in html and "evil-pkg" in html and "0123abcd" in html
    curves = html[html.index('id="curves-table"') : html.index('id="runs"')]
    assert curves.count('<svg class="spark"') == len(SEEDS)  # each method run over its baseline run
    assert curves.count("<polyline") == 2 * len(SEEDS)
    assert "unet_isbi+dice_bce-seed2" in curves and "unet_isbi-seed2" in curves
    assert 'id="compare-stale"' not in html


def test_user_strings_on_the_comparison_page_are_escaped(report: dict[str, Path]) -> None:
    html = page(report)
    assert XSS not in html and XSS_IMG not in html and "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x" in html
    index = (report["pages"] / "index.html").read_text()
    assert XSS not in index and "&lt;script&gt;" in index  # the spec, listed on the index


def test_a_run_changed_since_the_comparison_is_flagged_and_a_missing_log_said(tmp_path: Path) -> None:
    results = tmp_path / "results"
    build_results(results, tables=(TABLE,))
    fake_comparison(results, logs=False)
    metrics = results / SCALE / "runs" / "unet_isbi+dice_bce-seed1" / "metrics.json"
    metrics.write_text(metrics.read_text().replace("hash1", "hash9"))
    build_pages(SCALE, results, tmp_path / "reports")
    html = (tmp_path / "reports" / SCALE / "compare" / f"{STEM}.html").read_text()
    stale = html[html.index('id="compare-stale"') :]
    assert "unet_isbi+dice_bce-seed1" in stale.split("</p>")[0] and "segbench compare" in stale
    assert "changed since" in html
    curves = html[html.index('id="curves-table"') : html.index('id="runs"')]
    # the baselines' curves only: the method runs have no log
    assert curves.count("<polyline") == len(SEEDS) and curves.count(">no log<br>") == len(SEEDS)


def test_a_file_that_is_not_a_comparison_is_one_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    build_results(results, tables=(TABLE,))
    bad = results / SCALE / "compare" / f"{STEM}.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"table": STEM}))
    with pytest.raises(InputError) as err:
        build_pages(SCALE, results, tmp_path / "reports")
    message = str(err.value)
    assert str(bad) in message and "not a comparison record" in message and "\n" not in message
