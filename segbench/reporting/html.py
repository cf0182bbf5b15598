"""Render the HTML report: ``reports/<scale>/index.html`` plus one page per assembled table.

Pages are self-contained and work offline: the stylesheet is inlined, images are local files under
``figures/``, links to run files and table sources are relative. Jinja2 autoescaping is on, so every
string from results or the registry (row labels, run names, paths) is shown as text, never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from segbench.claims import TEST_RULE, count_verdicts
from segbench.errors import InputError
from segbench.formatting import VERDICT_LEGEND, count_text
from segbench.io import read_json, write_text_atomic
from segbench.isbi_submission import OFFICIAL_METRICS
from segbench.names import check_links, check_name
from segbench.paths import child_path, runs_dir
from segbench.paths import tables_dir as scale_tables_dir
from segbench.reporting.compare_page import compare_view, comparison_link, load_comparisons, page_path
from segbench.reporting.figures.base import FigureResult, manifest_path, read_manifest
from segbench.reporting.official import official_rows
from segbench.reporting.scale_text import scale_banner
from segbench.reporting.view import scale_is_absolute, table_view, url_between
from segbench.reporting.zoo import table_runs_summary, zoo_view


@dataclass(frozen=True)
class ReportPaths:
    index: Path
    pages: list[Path]
    runs: Path | None = None
    comparisons: tuple[Path, ...] = ()


def environment() -> jinja2.Environment:
    """The template environment: autoescape on for every template (``.html.j2`` included)."""
    loader = jinja2.PackageLoader("segbench.reporting", "templates")
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["other_reports"] = []  # set per report: see other_reports()
    env.globals["scale_banner"] = None  # set per report: segbench.reporting.scale_text.scale_banner
    env.globals["root"] = ""  # the prefix from a page to its report folder ("../" for compare/ pages)
    return env


# Reports a page links to in its header, besides its own: the bench report and each scale's report. The
# smoke scale's reports are test output (gitignored), so no committed page links to them.
LINKED_REPORTS = ("mini", "real_cpu", "paper", "bench")


def other_reports(reports_root: Path, current: str) -> list[dict[str, str]]:
    """``[{"name", "href"}]``: the other reports under ``reports_root`` that exist (their index.html), as
    relative links from a page in ``reports_root/<current>/``; the mini report and the bench report link
    to each other."""
    return [
        {"name": "benchmarks" if name == "bench" else f"{name} report", "href": f"../{name}/index.html"}
        for name in LINKED_REPORTS
        if name != current and (reports_root / name / "index.html").is_file()
    ]


def stylesheet() -> Markup:
    """The report's CSS (our own file, inlined into each page's <style>)."""
    css = (
        resources.files("segbench.reporting").joinpath("templates", "report.css").read_text(encoding="utf-8")
    )
    return Markup(css)


def table_order(names: list[str]) -> list[str]:
    """Registry order first (table1, table2a, ...), then any other table alphabetically."""
    try:
        from segbench.registry import table_names

        known = table_names()
    except Exception:  # a report must still render from results alone
        known = []
    rank = {name: i for i, name in enumerate(known)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def load_tables(scale: str, results: Path) -> list[dict[str, Any]]:
    """Every ``results/<scale>/tables/*.json`` (assembled tables), in registry order."""
    tables_dir = scale_tables_dir(results, scale)
    by_name = {}
    for path in sorted(tables_dir.glob("*.json")):
        table = read_json(path, "table JSON")
        if not isinstance(table, dict) or "rows" not in table or "columns" not in table:
            raise InputError(
                f"{path}: not an assembled table (no rows/columns); rebuild it with segbench table"
            )
        table.setdefault("table", path.stem)
        check_table_names(table, path)
        by_name[table["table"]] = table
    return [by_name[name] for name in table_order(list(by_name))]


def check_table_names(table: dict[str, Any], path: Path) -> None:
    """Every name of ``table`` that becomes a path or a link (its own, its scale, its runs, its rows' runs)
    must pass the registry's name rule (:mod:`segbench.names`)."""
    check_name(table["table"], what="table", source=path)
    check_name(table.get("scale", "scale"), what="scale", source=path)
    runs = table.get("runs") or {}
    if not isinstance(runs, dict):
        raise InputError(f"{path}: 'runs' is not an object; rebuild it with segbench table")
    for rid in runs:
        check_name(rid, "run_id", what="run", source=path)
    for row in table["rows"]:
        for run in (row.get("runs") or []) if isinstance(row, dict) else []:
            check_name(run, "run", what="row run", source=path)


def load_figures(figures_dir: Path, names: list[str] | None = None) -> list[FigureResult]:
    """Figure manifests under ``figures_dir`` (registry order when ``names`` is given)."""
    if names is None:
        paths = sorted(figures_dir.glob("*.json"))
    else:
        paths = [manifest_path(figures_dir, n) for n in names if manifest_path(figures_dir, n).is_file()]
    return [read_manifest(p) for p in paths]


def figure_view(result: FigureResult, figures_dir: Path, page_dir: Path) -> dict[str, Any]:
    html = None
    if result.status == "ok" and result.html and (figures_dir / result.html).is_file():
        html = Markup((figures_dir / result.html).read_text(encoding="utf-8"))  # generated by our templates
    # Only the PNG is linked: the SVG copies are not committed (.gitignore), so a link to one would be dead
    # on a fresh checkout; and a PNG that is not on disk gives no <img> at all.
    image = (
        result.image
        if result.status == "ok" and result.image and (figures_dir / result.image).is_file()
        else None
    )
    return {
        "name": result.name,
        "title": result.title,
        "caption": result.caption,
        "status": result.status,
        "note": result.note,
        "image": url_between(figures_dir / image, page_dir) if image else None,
        "html": html,
    }


def render_table_page(
    env: jinja2.Environment,
    table: dict[str, Any],
    results: Path,
    page_dir: Path,
    figures: list[dict[str, Any]],
    compared: list[dict[str, Any]] | None = None,
) -> str:
    view = table_view(table, results, page_dir)
    trained = table_runs_summary(list(table.get("runs", {}) or {}), results, table["scale"], page_dir)
    official = official_rows(list(table.get("runs", {}) or {}), results, table["scale"])
    return env.get_template("table.html.j2").render(
        t=view,
        trained=trained,
        official=official,
        official_metrics=OFFICIAL_METRICS,
        figures=figures,
        compared=compared or [],
        css=stylesheet(),
        scale=view["scale"],
        absolute=view["absolute"],
        scale_description=view["scale_description"],
    )


def render_index(
    env: jinja2.Environment,
    scale: str,
    tables: list[dict[str, Any]],
    results: Path,
    page_dir: Path,
    figures: list[dict[str, Any]],
    compared: list[dict[str, Any]] | None = None,
) -> str:
    views = [table_view(t, results, page_dir) for t in tables]
    description = views[0]["scale_description"] if views else ""
    claims = [{**d, "table": v["name"]} for v in views for d in v["directions"]]
    records = [d for t in tables for d in t.get("directions", [])]
    return env.get_template("index.html.j2").render(
        paper_directions=[d for d in claims if d["source"] == "paper"],
        our_directions=[d for d in claims if d["source"] == "ours"],
        paper_count_text=count_text(
            count_verdicts([d for d in records if d.get("source", "paper") == "paper"])
        ),
        our_count_text=count_text(count_verdicts([d for d in records if d.get("source") == "ours"])),
        test_rule=TEST_RULE if records else None,
        verdict_legend=VERDICT_LEGEND,
        tables=views,
        figures=figures,
        compared=compared or [],
        css=stylesheet(),
        scale=scale,
        absolute=scale_is_absolute(scale),
        scale_description=description,
        results_dir=url_between(results / scale, page_dir),
    )


def render_runs_page(
    env: jinja2.Environment, scale: str, results: Path, page_dir: Path, description: str
) -> str:
    """``runs.html``: the run zoo (every run instance of the scale, see :mod:`segbench.reporting.zoo`)."""
    groups = zoo_view(results, scale, page_dir)
    return env.get_template("runs.html.j2").render(
        groups=groups,
        count=sum(len(g["rows"]) for g in groups),
        css=stylesheet(),
        scale=scale,
        absolute=scale_is_absolute(scale),
        scale_description=description,
        runs_dir=runs_dir(Path("results"), scale).as_posix(),
        claims_href="index.html#directions",  # the zoo has no claims of its own: the index lists them
    )


def render_compare_page(
    env: jinja2.Environment, record: dict[str, Any], results: Path, page_dir: Path, tables: set[str]
) -> str:
    """``compare/<table>--<method>.html``: one comparison record (:mod:`segbench.reporting.compare_page`)."""
    view = compare_view(record, results, page_dir, tables)
    return env.get_template("compare.html.j2").render(
        c=view,
        root="../",
        css=stylesheet(),
        scale=view["scale"],
        absolute=scale_is_absolute(view["scale"]),
        scale_description=view["scale_description"],
    )


def build_pages(scale: str, results: Path, out: Path, figure_names: list[str] | None = None) -> ReportPaths:
    """Write ``out/<scale>/index.html``, ``out/<scale>/runs.html`` (the run zoo), ``out/<scale>/<table>.html``
    and ``out/<scale>/compare/<table>--<method>.html`` (one per ``results/<scale>/compare/*.json``)
    from the tables, comparisons, run records and figure manifests on disk (render figures first with
    :func:`segbench.reporting.render_figures`). Every page is rendered and its links checked
    (:func:`segbench.names.check_links`) before the first is written."""
    page_dir = out / scale
    figures_dir = page_dir / "figures"
    env = environment()
    env.globals["other_reports"] = other_reports(out, scale)
    env.globals["scale_banner"] = scale_banner(scale)
    tables = load_tables(scale, results)
    manifests = load_figures(figures_dir, figure_names)
    index_figures = [figure_view(m, figures_dir, page_dir) for m in manifests if m.on_index]
    records = load_comparisons(scale, results)
    compared = [comparison_link(r, page_dir, page_dir) for r in records]
    rendered: dict[Path, str] = {}
    pages = []
    for table in tables:
        own = [figure_view(m, figures_dir, page_dir) for m in manifests if table["table"] in m.tables]
        links = [c for c in compared if c["table"] == table["table"]]
        page = child_path(page_dir, table["table"], ".html", what="table")
        rendered[page] = render_table_page(env, table, results, page_dir, own, links)
        pages.append(page)
    names = {t["table"] for t in tables}
    comparison_pages = []
    for record in records:
        page = page_path(page_dir, record["name"])
        rendered[page] = render_compare_page(env, record, results, page_dir, names)
        comparison_pages.append(page)
    description = next((t.get("scale_description", "") for t in tables), "")
    runs = page_dir / "runs.html"
    rendered[runs] = render_runs_page(env, scale, results, page_dir, description)
    index = page_dir / "index.html"
    rendered[index] = render_index(env, scale, tables, results, page_dir, index_figures, compared)
    for path, text in rendered.items():
        check_links(text, path)
    for path, text in rendered.items():
        write_text_atomic(path, text)
    return ReportPaths(index=index, pages=pages, runs=runs, comparisons=tuple(comparison_pages))
