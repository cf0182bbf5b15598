"""What every figure shares: its spec, the context it renders in, its result manifest, deterministic saving.

A figure writes ``<out>/<scale>/figures/<name>.{png,svg}`` (or ``<name>.html`` for a table-like figure)
plus ``<name>.json``, a manifest saying whether it rendered or why it was skipped; the report reads the
manifests, so a figure rendered alone (``segbench report --figure NAME``, one Snakemake rule each) shows up
in the next report build.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segbench.io import read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from segbench.names import check_name
from segbench.paths import child_path, runs_dir, scale_dir

DPI = 100
SVG_HASH_SALT = "segbench"  # fixed ids in SVG output, so the same figure gives the same bytes


class MissingInput(Exception):  # noqa: N818 - a condition, not a failure
    """A figure's input (a run, a table, a module another engineer is writing) is absent: skip with a note."""


@dataclass(frozen=True)
class FigureContext:
    scale: str
    results: Path  # results root (holds <scale>/runs, <scale>/tables)
    out_dir: Path  # reports/<scale>/figures
    data_root: Path | None = None

    @property
    def scale_dir(self) -> Path:
        return scale_dir(self.results, self.scale)

    @property
    def runs_dir(self) -> Path:
        return runs_dir(self.results, self.scale)


@dataclass
class FigureResult:
    name: str
    title: str
    caption: str
    status: str  # "ok" | "skipped" | "failed"
    note: str = ""
    files: list[str] = field(default_factory=list)  # file names inside the figures directory
    html: str | None = None  # file name of an HTML fragment (table-like figures)
    tables: list[str] = field(default_factory=list)  # tables whose pages show this figure
    on_index: bool = True  # False: shown on its tables' pages only (the per-table bar charts)

    @property
    def image(self) -> str | None:
        return next((f for f in self.files if f.endswith(".png")), None)

    @property
    def vector(self) -> str | None:
        return next((f for f in self.files if f.endswith(".svg")), None)


@dataclass(frozen=True)
class FigureSpec:
    """A registry entry: ``render(ctx)`` returns the written file names or raises :class:`MissingInput`;
    ``inputs(scale, results)`` lists the files it reads (the Snakefile makes them the rule's inputs)."""

    name: str
    title: str
    caption: str
    render: Callable[[FigureContext], list[str]]
    inputs: Callable[[str, Path], list[Path]] = lambda scale, results: []
    tables: tuple[str, ...] = ()
    on_index: bool = True


def manifest_path(out_dir: Path, name: str) -> Path:
    return child_path(out_dir, name, ".json", what="figure")


def write_manifest(result: FigureResult, out_dir: Path) -> None:
    write_json_atomic(manifest_path(out_dir, result.name), asdict(result))


def read_manifest(path: Path) -> FigureResult:
    data: dict[str, Any] = read_json(path, "figure manifest")
    result = FigureResult(**{k: data[k] for k in FigureResult.__dataclass_fields__ if k in data})
    check_name(result.name, what="figure name", source=path)
    for name in [*result.files, *([result.html] if result.html else [])]:
        child_path(path.parent, name, what="figure file", source=path)  # stays inside the figures folder
        check_name(name, "file", what="figure file", source=path)  # and is a plain relative link
    for table in result.tables:
        check_name(table, what="figure table", source=path)
    return result


def run_record(ctx: FigureContext, run: str, record: str) -> Path | None:
    """The ``record`` file (segbench.records) of the lowest seed of registry run ``run`` at the context's
    scale that has one, else None."""
    found = sorted(
        ctx.runs_dir.glob(f"{run}-seed*/{record}"),
        key=lambda p: (len(p.parent.name), p.parent.name),
    )
    return found[0] if found else None


def save_matplotlib(fig: Any, out_dir: Path, name: str) -> list[str]:
    """Save a matplotlib Figure as PNG and SVG with fixed DPI and without dates: same input, same bytes."""
    import matplotlib

    files = []
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        for ext, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=DPI, metadata=metadata)
            write_bytes_atomic(child_path(out_dir, name, f".{ext}", what="figure"), buf.getvalue())
            files.append(f"{name}.{ext}")
    return files


def save_html_fragment(html: str, out_dir: Path, name: str) -> list[str]:
    write_text_atomic(child_path(out_dir, name, ".html", what="figure"), html)
    return [f"{name}.html"]


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas, independent of pyplot's global state."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def plain(text: str) -> str:
    """A user string for a matplotlib label: ``$`` would start mathtext, so it is escaped."""
    return str(text).replace("$", r"\$")
