"""Figures: the registry, deterministic output, RoIAlign drawn from the op, the model/data-driven figures,
predictions figures from fake predictions, and skipping (never crashing) when inputs are missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_reporting_fixtures import build_results

from segbench.formatting import FRACTION, POINTS
from segbench.reporting import FIGURES, FigureContext, render_figure
from segbench.reporting.figures.base import read_manifest

SCALE = "smoke"


def context(tmp: Path, results: Path | None = None, data_root: Path | None = None) -> FigureContext:
    return FigureContext(SCALE, results or tmp / "results", tmp / "reports" / SCALE / "figures", data_root)


def test_registry_has_every_paper_figure_and_a_bar_chart_per_reproduced_table() -> None:
    from segbench.registry import load_registry, row_runs

    expected = {
        "training_curves",
        "run_metrics",
        "maskrcnn_fig2_5",
        "em_maskrcnn_predictions",
        "maskrcnn_fig3",
        "maskrcnn_fig6",
        "maskrcnn_fig4",
        "maskrcnn_fig7",
        "unet_fig2",
        "unet_fig3",
        "unet_fig4",
        "isbi_predictions",
    }
    tables = [n for n, t in load_registry()["tables"].items() if any(row_runs(r) for r in t["rows"])]
    assert expected | {f"bars_{t}" for t in tables} == set(FIGURES)
    inputs = FIGURES["bars_table2c"].inputs(SCALE, Path("/r"))
    assert inputs == [Path("/r/smoke/tables/table2c.json")]
    assert Path("/r/smoke/runs/r50_c4-seed0/train_log.jsonl") in FIGURES["training_curves"].inputs(
        SCALE, Path("/r")
    )


def test_figures_are_deterministic(tmp_path: Path) -> None:
    build_results(tmp_path / "results", tables=("table2b",), scale=SCALE)
    outputs = []
    for k in range(2):
        ctx = FigureContext(SCALE, tmp_path / "results", tmp_path / f"out{k}", None)
        assert render_figure("training_curves", ctx).status == "ok"
        outputs.append(
            {f: (ctx.out_dir / f).read_bytes() for f in ("training_curves.png", "training_curves.svg")}
        )
    assert outputs[0] == outputs[1]
    assert b"<dc:date>" not in outputs[0]["training_curves.svg"]


def test_missing_inputs_skip_with_a_note(tmp_path: Path) -> None:
    for name in (
        "training_curves",
        "bars_table2c",
        "maskrcnn_fig2_5",
        "maskrcnn_fig4",
        "maskrcnn_fig6",
        "maskrcnn_fig7",
        "unet_fig2",
        "unet_fig4",
        "isbi_predictions",
    ):
        result = render_figure(name, context(tmp_path))
        assert result.status == "skipped" and result.note, name
        assert read_manifest(tmp_path / "reports" / SCALE / "figures" / f"{name}.json").status == "skipped"


def test_a_skip_note_inside_the_repository_names_no_machine_folder() -> None:
    from segbench.paths import REPO_ROOT
    from segbench.reporting.figures.predictions import shown

    assert shown(REPO_ROOT / "results" / "mini" / "runs") == "results/mini/runs"
    assert shown(Path("/elsewhere/runs")) == "/elsewhere/runs"


def test_fig3_sampling_points_reproduce_the_op() -> None:
    pytest.importorskip("segbench.ops")
    from segbench.reporting.figures.roialign import OUTPUT, STRIDE, compute_example

    ex = compute_example()
    assert np.allclose(ex.pooled, ex.recomputed, atol=1e-9)
    x1, y1, x2, y2 = (v / STRIDE for v in ex.box)
    ys, xs = ex.points[..., 0], ex.points[..., 1]
    assert ys.min() > y1 and ys.max() < y2 and xs.min() > x1 and xs.max() < x2
    # every bin's points lie inside that bin: the RoI is not quantized
    bin_h = (y2 - y1) / OUTPUT
    assert np.all(ys[0] < y1 + bin_h) and np.all(ys[1] > y1 + bin_h)
    assert x1 % 1 != 0 and y1 % 1 != 0


@pytest.mark.parametrize("name", ["maskrcnn_fig3", "unet_fig3"])
def test_code_driven_figures_render(tmp_path: Path, name: str) -> None:
    result = render_figure(name, context(tmp_path))
    assert result.status == "ok", result.note
    out = tmp_path / "reports" / SCALE / "figures"
    assert (out / f"{name}.png").stat().st_size > 5000 and (out / f"{name}.svg").is_file()


def test_fig4_reads_the_head_records_that_evaluation_writes(tmp_path: Path) -> None:
    from segbench.engine.maskrcnn import write_head_record
    from segbench.models import build
    from segbench.registry import resolve_run

    for run in ("r50_c4", "r50_fpn"):
        cfg = resolve_run(run, SCALE, 0)
        run_dir = tmp_path / "results" / SCALE / "runs" / cfg["run_id"]
        run_dir.mkdir(parents=True)
        write_head_record(build(cfg), cfg, run_dir)
    result = render_figure("maskrcnn_fig4", context(tmp_path))
    assert result.status == "ok", result.note
    html = (tmp_path / "reports" / SCALE / "figures" / "maskrcnn_fig4.html").read_text()
    assert 'id="heads-r50_c4"' in html and 'id="heads-r50_fpn"' in html and "ConvTranspose2d" in html
    assert "r50_c4-seed0" in html


def test_fig2_reads_the_tile_record_that_evaluation_writes(tmp_path: Path) -> None:
    from segbench.engine.overlap_tile import TileGeometry
    from segbench.engine.unet import write_tile_record
    from segbench.models.unet import UNet

    cfg = {"run": "unet_isbi", "run_id": "unet_isbi-seed0"}
    run_dir = tmp_path / "results" / SCALE / "runs" / cfg["run_id"]
    run_dir.mkdir(parents=True)
    write_tile_record(run_dir, TileGeometry.for_model(UNet(base_channels=1), 572), cfg)  # the paper's tile
    assert json.loads((run_dir / "overlap_tile.json").read_text())["output_size"] == 388
    result = render_figure("unet_fig2", context(tmp_path))
    assert result.status == "ok", result.note
    out = tmp_path / "reports" / SCALE / "figures"
    assert (out / "unet_fig2.png").stat().st_size > 5000 and (out / "unet_fig2.svg").is_file()


def test_isbi_predictions_draw_a_smoke_runs_held_out_slices_with_their_errors(tmp_path: Path) -> None:
    """From a smoke U-Net run's records (two held-out slices): one row per slice, each titled with its
    per_slice errors, the title naming the scale and the data; a run of the same fold with older records
    (no per_slice) is left out with a note, and with none usable the figure is skipped saying why."""
    from unittest import mock

    from segbench.data import prepare
    from segbench.engine.runner import evaluate_run, train_run
    from segbench.formatting import FRACTION
    from segbench.registry import figure_tables, resolve_run
    from segbench.reporting.figures import isbi

    assert set(figure_tables("isbi_predictions")) == {"unet_table1", "unet_budget"}
    prepare("em_smoke", tmp_path / "data", progress=False)
    cfg = resolve_run("unet_isbi", SCALE, 0)
    cfg["model"].update(depth=2, base_channels=2)
    cfg["input"]["tile"] = 60
    cfg["schedule"].update(iterations=1, checkpoint_every=1)
    cfg["split"] = {"fold": 0, "folds": 2}  # slices 0-1 of 4 held out
    runs = tmp_path / "results" / SCALE / "runs"
    unet = runs / cfg["run_id"]
    train_run(cfg, unet, tmp_path / "data")
    evaluate_run(cfg, unet, tmp_path / "data")
    older = runs / "swcnn_isbi-seed0"  # a sliding-window run of the fold, evaluated before per_slice
    older.mkdir()
    for name in ("config.json", "predictions_val.npz"):
        (older / name).write_bytes((unet / name).read_bytes())
    metrics = json.loads((unet / "metrics.json").read_text())
    per_slice = metrics["metrics"]["isbi"].pop("per_slice")
    (older / "metrics.json").write_text(json.dumps(metrics))

    saved = {}
    with mock.patch.object(
        isbi, "save_matplotlib", lambda fig, out, name: saved.setdefault(name, fig) and []
    ):
        isbi.render_isbi_predictions(context(tmp_path))
    fig = saved["isbi_predictions"]
    title = fig._suptitle.get_text()
    assert "scale smoke: slices 0-1 of em_smoke (fold 1 of 2, synthetic data), run unet_isbi-seed0" in title
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 2 * 3  # two held-out slices: raw image, P(cell), thresholded vs ground truth
    for k, entry in enumerate(per_slice):
        assert titles[3 * k].startswith(f"slice0{k} (stack index {k})")
        assert f"pixel {FRACTION.value(entry['pixel_error'])}" in titles[3 * k + 2]
        assert f"Rand {FRACTION.value(entry['rand_error'])}" in titles[3 * k + 2]
    assert "not shown: swcnn_isbi-seed0: metrics.json has no per_slice" in fig._supxlabel.get_text()
    result = render_figure("isbi_predictions", context(tmp_path))
    assert result.status == "ok", result.note
    assert (tmp_path / "reports" / SCALE / "figures" / "isbi_predictions.png").stat().st_size > 5000

    (unet / "metrics.json").write_text(json.dumps(metrics))  # the U-Net run's records are older too
    result = render_figure("isbi_predictions", context(tmp_path))
    assert result.status == "skipped" and "unet_isbi-seed0: metrics.json has no per_slice" in result.note
    assert "\n" not in result.note


def test_reporting_imports_no_model_or_engine_code() -> None:
    """Figures read run records (segbench.records); they never build a model or call the engine."""
    import re

    root = Path(__file__).resolve().parents[1] / "segbench" / "reporting"
    pattern = re.compile(r"^\s*(from|import)\s+segbench\.(models|engine)\b", re.MULTILINE)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert not offenders


def _fake_predictions(run_dir: Path, dataset: str, data_root: Path, keypoints: bool) -> None:
    """Ground truth dressed up as a run's COCO results (score 0.9)."""
    from segbench.data import prepare
    from segbench.data.registry import dataset_paths

    prepare(dataset, data_root, progress=False)
    coco = json.loads(dataset_paths(dataset, data_root)["val"]["annotations"].read_text())
    base = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9}
        for a in coco["annotations"]
    ]
    records = {
        "bbox": [{**b, "bbox": a["bbox"]} for b, a in zip(base, coco["annotations"], strict=True)],
        "segm": [
            {**b, "segmentation": a["segmentation"]} for b, a in zip(base, coco["annotations"], strict=True)
        ],
    }
    if keypoints:
        records["keypoints"] = [
            {**b, "keypoints": a["keypoints"]} for b, a in zip(base, coco["annotations"], strict=True)
        ]
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"dataset": {"name": dataset}}))
    (run_dir / "predictions_val.json").write_text(json.dumps(records))


def test_prediction_figures_from_a_run(tmp_path: Path) -> None:
    pytest.importorskip("segbench.data.registry")
    runs = tmp_path / "results" / SCALE / "runs"
    _fake_predictions(runs / "r50_fpn-seed0", "shapes_smoke", tmp_path / "data", keypoints=False)
    _fake_predictions(
        runs / "r50_fpn_person_kp_mask-seed0", "keypoints_smoke", tmp_path / "data", keypoints=True
    )
    for name in ("maskrcnn_fig2_5", "maskrcnn_fig6", "maskrcnn_fig7"):
        result = render_figure(name, context(tmp_path, data_root=tmp_path / "data"))
        assert result.status == "ok", result.note
        assert result.tables and (tmp_path / "reports" / SCALE / "figures" / f"{name}.png").is_file()


def test_fig6_prefers_the_r101_fpn_run_and_picks_overlapping_objects(tmp_path: Path) -> None:
    """Fig. 6 draws the registry's ResNet-101-FPN run before any other, on the val images whose ground
    truth overlaps most, ground truth on top."""
    from unittest import mock

    from segbench.registry import figure_runs, figure_tables
    from segbench.reporting.figures import predictions

    assert figure_runs("maskrcnn_fig6")[0][0] == "r101_fpn" and "table1" in figure_tables("maskrcnn_fig6")
    runs = tmp_path / "results" / SCALE / "runs"
    for run in ("r50_fpn", "r101_fpn"):
        _fake_predictions(runs / f"{run}-seed0", "shapes_smoke", tmp_path / "data", keypoints=False)
    saved = {}
    with mock.patch.object(
        predictions, "save_matplotlib", lambda fig, out, name: saved.setdefault(name, fig) and []
    ):
        predictions.render_overlaps(context(tmp_path, data_root=tmp_path / "data"))
    fig = saved["maskrcnn_fig6"]
    assert "r101_fpn-seed0" in fig._suptitle.get_text()
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    columns = len(titles) // 2
    assert all(t.startswith("ground truth") for t in titles[:columns])
    assert all(t.startswith("Mask R-CNN") for t in titles[columns:])
    pairs = [int(t.split("(")[1].split()[0]) for t in titles[:columns]]
    assert pairs == sorted(pairs, reverse=True)
    assert (
        predictions.overlapping_pairs(
            [{"bbox": [0, 0, 4, 4]}, {"bbox": [2, 2, 4, 4]}, {"bbox": [9, 9, 1, 1]}]
        )
        == 1
    )


def test_prediction_figures_without_detections_are_skipped_not_failed(tmp_path):
    from segbench.reporting.figures import predictions

    with pytest.raises(predictions.MissingInput, match="no detections"):
        predictions._panel_grid(0)


def test_weak_models_show_their_most_confident_detections():
    from segbench.reporting.figures.predictions import SCORE_THRESHOLD, chosen_images, score_threshold

    strong = {1: [{"score": 0.9}, {"score": 0.2}], 2: [{"score": 0.1}]}
    assert score_threshold(strong) == SCORE_THRESHOLD and chosen_images(strong) == [1]
    weak = {i: [{"score": 0.01 * i}] for i in range(1, 21)}
    threshold = score_threshold(weak, top=3)
    assert threshold == pytest.approx(0.18)
    assert chosen_images(weak, threshold) == [18, 19, 20]


def test_table_chart_has_a_claims_panel_labelled_axes_and_a_title_that_fits(tmp_path: Path) -> None:
    """The claims panel (gap with seed spread beside the paper's gap), a y label with units on every
    panel, and a suptitle no wider than the figure."""
    from unittest import mock

    from segbench.reporting.figures import ablation

    build_results(tmp_path / "results", scale="mini")
    ctx = FigureContext("mini", tmp_path / "results", tmp_path / "figures")
    saved = {}
    with mock.patch.object(
        ablation, "save_matplotlib", lambda fig, out, name: saved.setdefault(name, fig) and []
    ):
        ablation.render_table_bars(ctx, "table2c", "bars_table2c")
    fig = saved["bars_table2c"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    claims = next(ax for ax in axes if ax.get_title().startswith("The claims"))
    assert "gap" in claims.get_ylabel() and "AP, %" in claims.get_ylabel()
    assert "paper's gap" in [t.get_text() for t in claims.get_legend().get_texts()]
    ticks = [" ".join(t.get_text().split()) for t in claims.get_xticklabels()]
    # table2c's equivalence claims say what they test
    on_par = [t for t in ticks if "on par: |gap| <= 1" in t]
    assert on_par and len(on_par) < len(ticks), ticks
    assert all(ax.get_ylabel() for ax in axes), [ax.get_title() for ax in axes if not ax.get_ylabel()]
    recall = next(ax for ax in axes if ax.get_title() == "AR")  # the registry's recall column
    assert "AR, %" in recall.get_ylabel() and "AP" not in recall.get_ylabel()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    assert title.x0 >= 0 and title.x1 <= fig.bbox.width


def test_fig4_is_a_grid_not_a_strip() -> None:
    from segbench.reporting.figures.predictions import panel_grid

    fig, axes = panel_grid(9)
    assert len(axes) == 9 and fig.get_figwidth() / fig.get_figheight() < 1.5


def _bar_heights_on_screen(fig, bars) -> list[float]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    return [patch.get_window_extent(renderer).height for patch in bars]


def test_the_papers_lower_warping_error_is_a_shorter_bar_than_ours() -> None:
    """real_cpu unet_table1: the paper's warping error (0.000353) is a quarter of ours (0.00158) and lower
    is better, so its bar is the shorter one, on the same axis as ours, never on an axis of its own."""
    from unittest import mock

    from segbench.paths import REPO_ROOT
    from segbench.reporting.figures import ablation
    from segbench.reporting.figures.base import new_figure

    results = REPO_ROOT / "results"
    table = json.loads((results / "real_cpu" / "tables" / "unet_table1.json").read_text())
    rows = ablation.measured_rows(table)
    unet = next(i for i, r in enumerate(rows) if r["id"] == "unet")
    cell = rows[unet]["values"]["warping_error"]
    assert cell["paper"] < cell["mean"] / 3  # the premise: ours is several times the paper's

    fig = new_figure(5, 4)
    ax = fig.add_subplot()
    drawn = ablation.absolute_panel(ax, table, rows, "warping_error", FRACTION, 1.0)
    paper_h, ours_h = _bar_heights_on_screen(fig, [drawn.paper[unet], drawn.ours[unet]])
    assert 0 < paper_h < ours_h
    assert "lower is better" in ax.get_ylabel() and "↓" in ax.get_ylabel()
    assert ax.get_title(loc="right") == "↓ better"
    assert not ax.yaxis_inverted()
    assert ("log" in ax.get_ylabel()) == drawn.log == (ax.get_yscale() == "log")

    saved = {}
    with mock.patch.object(
        ablation, "save_matplotlib", lambda fig, out, name: saved.setdefault(name, fig) and []
    ):
        ablation.render_table_bars(
            FigureContext("real_cpu", results, Path("/nonexistent")), "unet_table1", "b"
        )
    axes = saved["b"].axes
    columns = [ax for ax in axes if ax.get_title() in table["columns"]]
    claims = [ax for ax in axes if ax.get_title().startswith("The claims")]
    assert len(columns) == len(table["columns"]) and len(axes) == len(columns) + len(claims)  # no twin axes
    # the warping error's gaps (~0.0003) get an axis of their own beside the Rand error's (~0.3)
    assert len(claims) == len({d["metric"] for d in table["directions"]}) == 3


def test_no_reporting_code_draws_a_second_y_axis() -> None:
    root = Path(__file__).resolve().parents[1] / "segbench" / "reporting"
    offenders = [
        str(p)
        for p in root.rglob("*")
        if p.is_file() and "twinx" in p.read_text(encoding="utf-8", errors="ignore")
    ]
    assert not offenders


def _synthetic_table(paper_factor: float, lower_is_better: bool = False) -> dict:
    def cell(mean: float, paper: float) -> dict:
        seeds = [mean * 0.9, mean, mean * 1.1]
        return {"mean": mean, "std": 0.1 * mean, "n": 3, "per_seed": seeds, "paper": paper, "delta": None}

    means = {"a": 0.3, "b": 0.5, "c": 0.4}
    return {
        "table": "synthetic",
        "title": "a synthetic table",
        "paper": "maskrcnn",
        "scale": "mini",
        "columns": ["AP"],
        "metrics": {"AP": "segm.AP"},
        "lower_is_better": lower_is_better,
        "rows": [
            {
                "id": k,
                "label": k,
                "reference_only": False,
                "values": {"AP": cell(m, paper_factor * m * (1 + i / 10))},
            }
            for i, (k, m) in enumerate(means.items())
        ],
        "directions": [],
    }


@pytest.mark.parametrize("paper_factor", [100.0, 1.5])
def test_values_spanning_more_than_ten_fold_get_a_log_axis_and_keep_their_order(paper_factor: float) -> None:
    from segbench.reporting.figures.ablation import absolute_panel
    from segbench.reporting.figures.base import new_figure

    table = _synthetic_table(paper_factor)
    fig = new_figure(5, 4)
    ax = fig.add_subplot()
    drawn = absolute_panel(ax, table, table["rows"], "AP", POINTS, 1.0)
    log = paper_factor == 100.0
    assert drawn.log == log and (ax.get_yscale() == "log") == log and ("log scale" in ax.get_ylabel()) == log
    values = [r["values"]["AP"]["paper"] for r in table["rows"]] + [
        r["values"]["AP"]["mean"] for r in table["rows"]
    ]
    bars = list(drawn.paper) + list(drawn.ours)
    # each bar's top is its value, and bars stand on one baseline below every value
    assert [b.get_y() + b.get_height() for b in bars] == pytest.approx(values)
    assert all(b.get_y() == drawn.bottom for b in bars) and drawn.bottom < min(values)
    heights = _bar_heights_on_screen(fig, bars)
    assert sorted(range(len(bars)), key=heights.__getitem__) == sorted(
        range(len(bars)), key=values.__getitem__
    )
    assert "higher is better ↑" in ax.get_ylabel() and ax.get_title(loc="right") == "↑ better"


def _claim(better: str, worse: str, verdict: str, gap: float, **extra) -> dict:
    return {
        "better": better,
        "worse": worse,
        "metric": "AP",
        "kind": "superiority",
        "margin": None,
        "source": "paper",
        "claim": f"{better} > {worse} on AP",
        "paper_gap": 3.0,
        "gap": gap,
        "gap_per_seed": [gap - 1, gap, gap + 1],
        "interval": {"low": gap - 2.5, "high": gap + 2.5, "level": 0.9},
        "p_value": 0.01,
        "p_adjusted": 0.02,
        "verdict": verdict,
        "verdict_reason": "",
        "caveats": [],
        **extra,
    }


def test_claims_panel_colours_each_gap_by_its_verdict() -> None:
    from matplotlib.colors import to_rgba

    from segbench.reporting.figures.ablation import VERDICT_COLOURS, claim_kind_note, claims_panel
    from segbench.reporting.figures.base import new_figure

    table = _synthetic_table(1.0)
    claims = [
        _claim("b", "a", "reproduced", 4.0),
        _claim(
            "c",
            "a",
            "contradicted",
            3.0,
            kind="equivalence",
            margin=1.0,
            p_adjusted=0.4,
            caveats=["the paper's rows were trained for a longer schedule than ours, which is why"],
        ),
    ]
    fig = new_figure(8, 4)
    ax = fig.add_subplot()
    claims_panel(ax, table, claims, POINTS)
    fig.canvas.draw()
    ours = {
        round(p.get_x() + p.get_width() / 2, 2): p.get_facecolor() for p in ax.patches if not p.get_hatch()
    }
    assert ours[0.2] == to_rgba(VERDICT_COLOURS["reproduced"]) == to_rgba("#2e7d32")
    assert ours[1.2] == to_rgba(VERDICT_COLOURS["contradicted"]) == to_rgba("#c62828")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"reproduced", "inconclusive", "contradicted", "untested / not measured", "paper's gap"} <= set(
        legend
    )
    ticks = [" ".join(t.get_text().split()) for t in ax.get_xticklabels()]
    assert "reproduced (Holm p 0.02)" in ticks[0] and "⚠" not in ticks[0]
    assert "contradicted (Holm p 0.4)" in ticks[1] and "⚠ the paper's rows" in ticks[1]
    assert "on par: |gap| <= 1" in ticks[1]
    # the error bar is the claim's interval, not the spread of the seeds
    errorbar = next(c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer")
    spans = sorted((s[0][1], s[1][1]) for s in errorbar.lines[2][0].get_segments())
    assert spans == [pytest.approx((0.5, 5.5)), pytest.approx((1.5, 6.5))]
    # the equivalence margin is drawn at ±1 over its claim only
    margins = [s for coll in ax.collections if coll.get_linestyle()[0][1] for s in coll.get_segments()]
    assert sorted(round(s[0][1], 6) for s in margins) == [-1.0, 1.0]
    assert claim_kind_note({"kind": "equivalent", "margin": 1}) == claim_kind_note(claims[1])
    assert "no worse" in claim_kind_note({"kind": "noninferiority", "margin": 0.5})
