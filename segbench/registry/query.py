"""Questions asked of a loaded registry: runs, seeds, tables, artifacts, figures, datasets per scale."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from segbench.errors import InputError
from segbench.registry.validate import EVALUATED_ON_DEFAULT, _row_runs, load_registry


def row_runs(row: dict[str, Any]) -> list[str]:
    """The runs a table row needs (none for a reference-only row)."""
    return _row_runs(row)


@dataclass(frozen=True)
class RunSeed:
    run: str
    seed: int

    @property
    def run_id(self) -> str:
        return run_id(self.run, self.seed)


def run_id(run: str, seed: int) -> str:
    """The directory name of one trained instance: ``<run>-seed<k>``."""
    return f"{run}-seed{seed}"


def split_run_id(name: str) -> tuple[str, int | None]:
    """The inverse of :func:`run_id`: ``r50_c4-seed2`` -> ``("r50_c4", 2)``; a name without a
    ``-seed<k>`` suffix -> ``(name, None)``."""
    head, sep, tail = name.rpartition("-seed")
    return (head, int(tail)) if sep and head and tail.isdigit() else (name, None)


def scales(registry: dict[str, Any] | None = None) -> list[str]:
    return list((registry or load_registry())["scales"])


def absolute_values(scale: str, registry: dict[str, Any] | None = None) -> bool:
    """Whether the paper's absolute values are a target at ``scale``: a scale whose registry entry says
    ``absolute_values: true`` (real data, e.g. real_cpu, and the paper scale), or whose ``base`` does."""
    all_scales = (registry or load_registry())["scales"]
    entry = all_scales.get(scale, {})
    return bool(
        entry.get("absolute_values", all_scales.get(entry.get("base", ""), {}).get("absolute_values"))
    )


def check_scale(scale: str, registry: dict[str, Any] | None = None) -> None:
    known = scales(registry)
    if scale not in known:
        raise InputError(f"unknown scale {scale!r}; choose one of {known} (config key `scale`)")


def table_names(registry: dict[str, Any] | None = None, scale: str | None = None) -> list[str]:
    """The registry's tables; with ``scale``, only those defined at it (the keys of a table's ``seeds``)."""
    tables = (registry or load_registry())["tables"]
    return [name for name, t in tables.items() if scale is None or scale in t["seeds"]]


def table_defined_at(name: str, scale: str, registry: dict[str, Any] | None = None) -> bool:
    """Whether table ``name`` exists at ``scale`` (most Mask R-CNN tables do not at the real-data CPU scale)."""
    return scale in get_table(name, registry)["seeds"]


def check_table_at_scale(name: str, scale: str, registry: dict[str, Any] | None = None) -> None:
    """One-line :class:`InputError` for a table that is not defined at ``scale``."""
    reg = registry or load_registry()
    if not table_defined_at(name, scale, reg):
        defined = ", ".join(get_table(name, reg)["seeds"])
        raise InputError(
            f"table {name!r} is not defined at scale {scale!r} (it exists at: {defined}); "
            f"tables at {scale}: {', '.join(table_names(reg, scale)) or 'none'}"
        )


def get_table(name: str, registry: dict[str, Any] | None = None) -> dict[str, Any]:
    tables = (registry or load_registry())["tables"]
    if name not in tables:
        raise InputError(f"unknown table {name!r}; `segbench list` shows the tables: {', '.join(tables)}")
    return tables[name]


def artifacts(registry: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Paper artifact -> tables it consists of: every table, every group (``table2`` = 2a-2e), ``all``."""
    reg = registry or load_registry()
    out: dict[str, list[str]] = {}
    for name, table in reg["tables"].items():
        if "group" in table:
            out.setdefault(table["group"], []).append(name)
        out[name] = [name]
    out["all"] = list(reg["tables"])
    return dict(sorted(out.items(), key=lambda kv: (kv[0] == "all", kv[0])))


def seeds_for_run(run: str, scale: str, registry: dict[str, Any] | None = None) -> list[int]:
    """Seeds of ``run`` at ``scale``: the most any table using it asks for (a shared run is trained
    once per seed, however many tables show it); none where only tables not defined at ``scale`` use it,
    one for a run no table uses."""
    reg = registry or load_registry()
    count, used = 0, False
    for table in reg["tables"].values():
        if any(run in _row_runs(row) for row in table["rows"]):
            used = True
            count = max(count, table["seeds"].get(scale, 0))
    return list(range(count if used else 1))


def runs_for_tables(tables: list[str], scale: str, registry: dict[str, Any] | None = None) -> list[RunSeed]:
    """Every (run, seed) the given tables need at ``scale``, each once, in registry order."""
    reg = registry or load_registry()
    wanted: list[str] = []
    for name in tables:
        check_table_at_scale(name, scale, reg)
        for row in get_table(name, reg)["rows"]:
            wanted.extend(r for r in _row_runs(row) if r not in wanted)
    return [RunSeed(run, seed) for run in wanted for seed in seeds_for_run(run, scale, reg)]


def dataset_for(run: str, scale: str, registry: dict[str, Any] | None = None) -> str:
    """The concrete dataset (an entry of datasets.yaml) that ``run`` trains on at ``scale``: the scale's
    mapping of the run's logical dataset. The Snakefile's rules call this instead of repeating the mapping."""
    reg = registry or load_registry()
    check_scale(scale, reg)
    if run not in reg["runs"]:
        raise InputError(f"unknown run {run!r}; `segbench list --runs` shows the runs")
    logical = reg["runs"][run]["dataset"]
    if logical not in reg["scales"][scale]["datasets"]:
        raise InputError(
            f"run {run!r} is not defined at scale {scale!r} (the scale maps no dataset for "
            f"{logical!r}); tables at {scale}: {', '.join(table_names(reg, scale)) or 'none'}"
        )
    return reg["scales"][scale]["datasets"][logical]


def real_datasets(logical: str, registry: dict[str, Any] | None = None) -> list[str]:
    """The concrete datasets any scale maps the logical dataset ``logical`` to, real ones first (the
    dataset the paper used, then its synthetic stand-ins), each once."""
    reg = registry or load_registry()
    names = list(
        dict.fromkeys(s["datasets"][logical] for s in reg["scales"].values() if logical in s["datasets"])
    )
    from segbench.data.registry import root_source

    return sorted(names, key=lambda n: root_source(n) != "real")


def runs_of_family(family: str, registry: dict[str, Any] | None = None) -> list[str]:
    """The registry's runs of one model family (``maskrcnn``, ``unet``, ``classical``), in registry order."""
    return [name for name, spec in (registry or load_registry())["runs"].items() if spec["family"] == family]


def evaluated_on(table: str, scale: str, registry: dict[str, Any] | None = None) -> str | None:
    """What ``table``'s runs are scored on at ``scale`` (its ``evaluated_on``: one text for every scale,
    or ``{scale: text, default: text}``); ``None`` where the registry says nothing for that scale."""
    value = get_table(table, registry).get("evaluated_on")
    if isinstance(value, dict):
        return value.get(scale, value.get(EVALUATED_ON_DEFAULT))
    return value


def headline_column(table: str, registry: dict[str, Any] | None = None) -> str:
    """The column that stands for ``table`` in one-value-per-row views: its ``headline`` key, else its
    first column."""
    spec = get_table(table, registry)
    return spec.get("headline", spec["columns"][0])


def figure_tables(figure: str, registry: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The tables whose pages show ``figure`` (``figures.<figure>.tables``); none for a run-wide figure."""
    return tuple((registry or load_registry()).get("figures", {}).get(figure, {}).get("tables", ()))


def figure_runs(figure: str, registry: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(run, label) of the runs ``figure`` draws from, in order of preference (``figures.<figure>.runs``;
    the label defaults to the run's name)."""
    entries = (registry or load_registry()).get("figures", {}).get(figure, {}).get("runs", [])
    return [(e, e) if isinstance(e, str) else (e["run"], e.get("label", e["run"])) for e in entries]


def datasets_for_scale(
    scale: str, runs: list[str] | None = None, registry: dict[str, Any] | None = None
) -> list[str]:
    """Concrete datasets the given runs (default: all) need at ``scale``."""
    reg = registry or load_registry()
    if runs is None:  # the runs of the tables defined at the scale
        runs = [rs.run for rs in runs_for_tables(table_names(reg, scale), scale, reg)]
    return list(dict.fromkeys(dataset_for(r, scale, reg) for r in runs))


def _dataset_entry(name: str) -> dict[str, Any]:
    """The dataset registry's entry, part of every resolved config (and so of its hash): never skipped."""
    from segbench.data.registry import dataset_entry

    return copy.deepcopy(dataset_entry(name))
