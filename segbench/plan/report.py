"""A plan printed: the table of runs with their cost, and the one-line estimate the workflow shows."""

from __future__ import annotations

from segbench.plan.cost import Plan


# -- printing ---------------------------------------------------------------------------------------------
def hours(h: float) -> str:
    if h <= 0:
        return "-"
    if h < 1:
        return f"{h * 60:.0f} min"
    if h < 48:
        return f"{h:.1f} h"
    return f"{h:.0f} h ({h / 24:.1f} d)"


def _gib(n: int | None) -> str:
    return "?" if n is None else ("0" if n == 0 else f"{n / 2**30:.1f} GiB")


def format_plan(p: Plan) -> list[str]:
    head = (
        "run",
        "dataset (download)",
        "iterations",
        "img/batch",
        "images seen",
        "img/s/GPU",
        "GPUs",
        "GPU-hours",
        "wall",
    )
    rows = []
    for r in p.runs:
        dl = _gib(r.download_bytes) if r.download_bytes is not None else r.download_note
        rows.append(
            (
                r.run_id,
                f"{r.dataset} ({dl})",
                f"{r.iterations:,}",
                str(r.images_per_batch),
                f"{r.images_seen:,}",
                f"{r.img_s_per_gpu:.3g}" if r.img_s_per_gpu else "-",
                str(r.gpus),
                f"{r.gpu_hours:.1f}" if r.gpu_hours else "-",
                hours(r.wall_hours),
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    right = {2, 3, 4, 5, 6, 7}

    def fmt(cells) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [
        f"plan for {p.target} at scale {p.scale} on {p.gpus} x {p.gpu_type} "
        f"(tables {', '.join(p.tables)}): {len(p.runs)} run instance(s), nothing downloaded or trained",
        "",
        fmt(head),
        fmt(["-" * w for w in widths]),
    ]
    for r, cells in zip(p.runs, rows, strict=True):
        out.append(fmt(cells))
        out.append(f"    {r.source}")
    out += ["", "datasets to download (shared directories once):"]
    for directory, d in p.datasets.items():
        size = _gib(d["bytes"]) if d["bytes"] is not None else d["note"]
        out.append(f"  {directory}: {size}  ({', '.join(d['datasets'])})")
    out += [
        "",
        f"total: {p.gpu_hours:,.0f} GPU-hours ({p.gpu_type}), about {hours(p.wall_hours)} wall on {p.gpus} GPU(s); "
        f"download {_gib(p.download_bytes)}"
        + (" + datasets of unknown size" if any(d["bytes"] is None for d in p.datasets.values()) else ""),
    ]
    if p.factor:
        out.append(f"CPU -> {p.gpu_type} factor X = {p.factor['factor']:.0f}: {p.factor['why']}")
    out += [f"note: {n}" for n in p.notes]
    return out


def estimate_line(p: Plan) -> str:
    return (
        f"{len(p.runs)} runs, {p.gpu_hours:,.0f} GPU-hours, about {hours(p.wall_hours)} wall on "
        f"{p.gpus} x {p.gpu_type}"
    )
