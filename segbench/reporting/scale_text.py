"""What a report page says about its scale, derived from the registry rather than written per page.

* :func:`scale_banner`: the banner under every page's header: whether the scale's data is real or
  synthetic (``source`` of its datasets in datasets.yaml), how it is scored (cross-validation), whether its
  networks and schedules are the paper's (its runs' resolved configs against the paper scale's), and a
  claim of the papers its tables test, as the example to compare by.
* :func:`sample_words`: "folds" at a cross-validation scale (``scales.<s>.cross_validation``), where seed k
  is fold k, "seeds" elsewhere.
"""

from __future__ import annotations

from typing import Any

from segbench.data.formats import dataset_format

PAPER_SCALE = "paper"
#: the dataset formats of datasets.yaml, as a sentence names them
#: per paper, a claim its tables test, the banner's example of what to compare at a reduced scale
CLAIM_EXAMPLES = {
    "maskrcnn": "RoIAlign > RoIPool",
    "unet": "u-net better than the sliding-window CNN on warping error",
}


def sample_words(folds: int | None) -> dict[str, str]:
    """``{"many": "folds", "one": "fold"}`` at a cross-validation scale (``folds`` set), else seeds."""
    return {"many": "folds", "one": "fold"} if folds else {"many": "seeds", "one": "seed"}


def scale_sample_words(scale: str) -> dict[str, str]:
    """:func:`sample_words` of ``scale``'s registry entry (seeds where the registry does not know it)."""
    from segbench.errors import InputError
    from segbench.registry import load_registry

    try:
        entry = load_registry()["scales"].get(scale, {})
    except InputError:
        entry = {}
    return sample_words(entry.get("cross_validation", {}).get("folds"))


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def dataset_name(entry: dict[str, Any], name: str) -> str:
    """A real dataset's name for a sentence: its description up to the first parenthesis."""
    return str(entry.get("description") or name).split(" (")[0].strip() or name


def scale_banner(scale: str, registry: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """``{"setting", "real", "example"}`` for the page banner of ``scale``: ``setting`` says what data
    the scale runs on and how it differs from the paper (e.g. ``real data (ISBI 2012 EM segmentation
    challenge training stack), scored on held-out training data (5-fold cross-validation), smaller networks
    and shorter schedules than the paper's``), ``real`` whether all of its data is real (the paper's values
    are then a target), ``example`` a claim to compare by. ``None`` for the paper scale itself (real data,
    the paper's networks and schedules) and where the registry does not know the scale."""
    from segbench.data.registry import dataset_entry, root_source
    from segbench.errors import InputError
    from segbench.registry import datasets_for_scale, load_registry, table_names

    try:
        reg = registry or load_registry()
    except InputError:
        return None
    if scale not in reg["scales"] or scale == PAPER_SCALE:
        return None
    tables = table_names(reg, scale)
    try:
        names = datasets_for_scale(scale, registry=reg)
        entries = {name: dataset_entry(name) for name in names}
    except InputError:
        return None
    real = [name for name in names if root_source(name) == "real"]  # derived from real data is real data
    generated = [name for name in names if name not in real]
    parts = []
    if real:
        parts.append(f"real data ({'; '.join(dict.fromkeys(dataset_name(entries[n], n) for n in real))})")
    if generated:
        formats = list(dict.fromkeys(dataset_format(entries[n]["format"]).label for n in generated))
        parts.append(f"synthetic data generated in the formats of {_and([f for f in formats if f])}")
    setting = " and ".join(parts) if parts else "no datasets"
    folds = reg["scales"][scale].get("cross_validation", {}).get("folds")
    if folds:
        setting += f", scored on held-out training data ({folds}-fold cross-validation)"
    differences = differences_from_paper(scale, tables, reg)
    if differences:
        setting += f", {differences} than the paper's"
    elif real and not generated and not folds:
        return None  # the paper's data, networks and schedules: nothing to warn of
    papers = list(dict.fromkeys(reg["tables"][t]["paper"] for t in tables))
    example = next((CLAIM_EXAMPLES[p] for p in papers if p in CLAIM_EXAMPLES), "")
    return {"setting": setting, "real": bool(real) and not generated, "example": example}


def differences_from_paper(scale: str, tables: list[str], reg: dict[str, Any]) -> str:
    """``smaller networks``, ``shorter schedules``, both (``smaller networks and shorter schedules``) or
    ``""``: how the runs of ``tables`` at ``scale`` (seed 0) differ from the same runs at the paper scale."""
    from segbench.registry import resolve_run, runs_for_tables

    if PAPER_SCALE not in reg["scales"]:
        return ""
    networks = schedules = False
    for run in dict.fromkeys(rs.run for rs in runs_for_tables(tables, scale, reg)):
        try:
            here, there = resolve_run(run, scale, 0, reg), resolve_run(run, PAPER_SCALE, 0, reg)
        except Exception:  # a run the paper scale does not define: nothing to compare with
            continue
        networks |= here["model"] != there["model"]
        ours, theirs = here["schedule"].get("iterations"), there["schedule"].get("iterations")
        schedules |= ours is not None and theirs is not None and ours < theirs
    words = [w for w, on in (("smaller networks", networks), ("shorter schedules", schedules)) if on]
    return " and ".join(words)
