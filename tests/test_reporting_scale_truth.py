"""Report pages say the truth about their scale: the banner from the scale's registry entry (real or
synthetic data), folds vs seeds, pooled errors, the mini U-Net protocol, unet_table2's SEG and IoU, and
the real_cpu U-Net figures drawn from the scale's own data (or skipped), never a synthetic stand-in.
Pages go to a tmp folder, never to reports/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_table_files import fake_runs

from segbench.paths import REPO_ROOT
from segbench.registry import evaluated_on
from segbench.reporting import build_report
from segbench.reporting.html import build_pages
from segbench.reporting.scale_text import scale_banner
from segbench.tables import write_table

REAL_FIGURES = ["unet_fig2", "unet_fig3"]


def page_text(path: Path) -> str:
    """A page's HTML without its inlined stylesheet."""
    return re.sub(r"<style>.*?</style>", "", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def real_cpu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real_cpu report of the committed results, its U-Net figures rendered without the real data."""
    out = tmp_path_factory.mktemp("reports")
    empty = tmp_path_factory.mktemp("no-data")
    build_report("real_cpu", REPO_ROOT / "results", out, figures=REAL_FIGURES, data_root=empty)
    return out / "real_cpu"


def test_real_cpu_pages_say_real_and_never_synthetic(real_cpu: Path) -> None:
    pages = sorted(real_cpu.glob("*.html"))
    assert {p.stem for p in pages} >= {"index", "runs", "unet_table1", "unet_budget"}
    for page in pages:
        text = page_text(page)
        banner = text[text.index('id="scale-banner"') : text.index("</p>", text.index('id="scale-banner"'))]
        assert "real data (ISBI 2012" in banner and "5-fold cross-validation" in banner, page.name
        assert "values are a target" in banner and "u-net better than the sliding-window CNN" in banner
        assert "synthetic" not in text.lower(), page.name
        assert "RoIAlign" not in banner, page.name


def test_real_cpu_table_pages_speak_of_folds_and_show_pooled_errors(real_cpu: Path) -> None:
    text = page_text(real_cpu / "unet_table1.html")
    legend = text[text.index('id="cell-legend"') : text.index("</p>", text.index('id="cell-legend"'))]
    assert "mean ± std over folds (n folds" in legend and "over seeds" not in legend
    assert "pooled" in legend
    cells = text[text.index('id="results-table"') : text.index("</table>", text.index('id="results-table"'))]
    assert 'title="per fold: ' in cells and "per seed" not in cells
    # 3 runs x 3 errors, and the 2 scores of the runs that have them (the threshold baseline's 5 folds)
    scored = [
        row
        for row in json.loads((REPO_ROOT / "results/real_cpu/tables/unet_table1.json").read_text())["rows"]
        if any(v.get("pooled") is not None for v in row.get("scores", {}).values())
    ]
    assert len(re.findall(r'<span class="pooled">pooled 0\.\d+</span>', cells)) == 9 + 2 * len(scored)
    assert "<dt>folds</dt>" in text


def test_real_cpu_unet_figures_are_skipped_without_the_real_data(real_cpu: Path) -> None:
    text = page_text(real_cpu / "unet_table1.html")
    for name in REAL_FIGURES:
        block = text[
            text.index(f'id="figure-{name}"') : text.index("</figure>", text.index(f'id="figure-{name}"'))
        ]
        assert "Skipped" in block and "the real dataset &#39;isbi2012&#39;" in block, block
        assert not (real_cpu / "figures" / f"{name}.png").exists()


def test_real_cpu_unet_figures_draw_the_real_held_out_slice(tmp_path: Path, shared_data: Path) -> None:
    from segbench.reporting.figures import render_figure
    from segbench.reporting.figures.unet import real_example

    ctx = build_context(tmp_path, shared_data)
    example = real_example(ctx, ("isbi2012",), "unet_isbi-seed1")
    assert example is not None and example.image.shape == (512, 512)
    assert example.text == "held-out slice06 of isbi2012 (fold 2 of 5, real data)"  # fold 2: slices 6-11
    for name in REAL_FIGURES:
        result = render_figure(name, ctx)
        assert result.status == "ok", result.note
        assert (ctx.out_dir / f"{name}.png").stat().st_size > 5000


def build_context(tmp: Path, data_root: Path):  # noqa: ANN201 - FigureContext
    from segbench.reporting.figures import FigureContext

    return FigureContext("real_cpu", REPO_ROOT / "results", tmp / "figures", data_root)


def test_the_banner_follows_each_scales_data() -> None:
    assert scale_banner("paper") is None  # the paper's data, networks and schedules: nothing to say
    mini = scale_banner("mini")
    assert mini and not mini["real"] and mini["setting"].startswith("synthetic data generated in the formats")
    assert (
        "smaller networks and shorter schedules" in mini["setting"]
        and mini["example"] == "RoIAlign > RoIPool"
    )
    rehearsal = scale_banner("rehearsal")
    assert (
        rehearsal and "synthetic" in rehearsal["setting"] and "smaller networks" not in rehearsal["setting"]
    )
    short = scale_banner("paper_short")
    assert (
        short
        and short["real"]
        and short["setting"]
        == ("real data (COCO 2017 instance segmentation), shorter schedules than the paper's")
    )


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mini pages of unet_table1, unet_budget and unet_table2 from fake runs."""
    tmp = tmp_path_factory.mktemp("mini")
    tables = ["unet_table1", "unet_budget", "unet_table2"]
    fake_runs(tmp / "results", "mini", tables, lambda run, seed: 0.05 if "threshold" in run else 0.5)
    for name in tables:
        write_table(name, "mini", tmp / "results")
    build_pages("mini", tmp / "results", tmp / "reports")
    return tmp / "reports" / "mini"


@pytest.mark.parametrize("name", ["unet_table1", "unet_budget"])
def test_mini_unet_pages_say_what_mini_evaluates_on(mini: Path, name: str) -> None:
    text = page_text(mini / f"{name}.html")
    assert "5 folds" not in text and "6 contiguous" not in text and "real ISBI" not in text
    assert "cross-validation" not in text
    assert f"reproduced on: {evaluated_on(name, 'mini')}" in text
    assert "slices 16-19 of 20 synthetic EM slices" in text
    assert "mean ± std over seeds (n seeds)" in text and "pooled" not in text
    banner = text[text.index('id="scale-banner"') : text.index("</p>", text.index('id="scale-banner"'))]
    assert "synthetic data" in banner and "absolute values are <em>not</em>" in banner


def test_unet_table2_page_shows_seg_and_iou_columns_and_the_note(mini: Path) -> None:
    text = page_text(mini / "unet_table2.html")
    head = text[text.index('id="results-table"') : text.index("</thead>", text.index('id="results-table"'))]
    columns = re.findall(r'<th title="(ctc\.\w+)">([^<]+)</th>', head)
    assert columns == [
        ("ctc.seg", "PhC-U373 SEG"),
        ("ctc.seg", "DIC-HeLa SEG"),
        ("ctc.iou", "PhC-U373 IoU"),
        ("ctc.iou", "DIC-HeLa IoU"),
    ]
    note = text[text.index('id="table-note"') : text.index("</p>", text.index('id="table-note"'))]
    assert "SEG measure" in note and "IOU" in note and "pixel-level foreground IoU" in note
    assert "paper 0.92" in text  # the paper's IOU in the SEG column
