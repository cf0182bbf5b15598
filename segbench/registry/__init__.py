"""The experiment registry: tables -> rows -> runs, the papers' values, and the scales.

One YAML file (``experiments.yaml`` beside this module), validated by ``experiments.schema.json`` plus
the cross-references a schema cannot express. segbench, the Snakefile and dvc.yaml all read it through
this module; nothing else lists a table, a row or a run.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from segbench.errors import InputError
from segbench.optional import available
from segbench.yamlfile import load_yaml

REGISTRY_FILE = "experiments.yaml"
SCHEMA_FILE = "experiments.schema.json"
EVALUATED_ON_DEFAULT = "default"  # a table's evaluated_on per scale: the text for the scales not named
#: the most seeds a table (or a derived scale) may ask for at one scale: each seed is a full training run,
#: and a count beyond this is a typo (200000 made `segbench status` run on silently at 700 MB)
MAX_SEEDS = 1000


def registry_path() -> Path:
    """The registry file; ``$SEGBENCH_REGISTRY`` points at another one (tests, plugins)."""
    env = os.environ.get("SEGBENCH_REGISTRY")
    return Path(env) if env else Path(str(resources.files("segbench.registry") / REGISTRY_FILE))


def load_registry(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Load and validate the registry (cached per path)."""
    return copy.deepcopy(_load_cached(str(path or registry_path())))


@lru_cache(maxsize=8)
def _load_cached(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        data = load_yaml(p, "registry")
    except FileNotFoundError:
        raise InputError(
            f"{p}: registry file not found; set SEGBENCH_REGISTRY or reinstall segbench"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise InputError(
            f"{p}:{where} invalid YAML ({getattr(exc, 'problem', exc)}); fix the syntax"
        ) from None
    return validate_registry(data, source=str(p))


def validate_registry(data: Any, source: str = "registry") -> dict[str, Any]:
    """Schema validation (where jsonschema is installed) plus cross-references; the error names the
    offending entry. Returns the registry with its derived scales expanded (:func:`expand_derived_scales`),
    the form every reader sees."""
    _check_seed_counts(data, source)
    schema_checked = available("jsonschema")
    if schema_checked:
        _check_schema(data, source)
    try:
        _check_derived_scales(data, source)
        expanded = expand_derived_scales(data)
        _check_references(expanded, source)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if schema_checked:
            raise
        raise InputError(
            f"{source}: malformed registry ({type(exc).__name__}: {exc}); "
            "pip install 'jsonschema>=4.18' for the entry at fault"
        ) from None
    return expanded


def _check_seed_counts(data: Any, source: str) -> None:
    """No seed count above :data:`MAX_SEEDS` (tables' ``seeds:`` per scale, derived scales' ``seeds:``),
    checked first, so the line is the same with or without jsonschema; other type errors are the schema's."""
    if not isinstance(data, dict):
        return
    counts: list[tuple[str, Any]] = []
    for section in ("tables", "scales"):
        entries = data.get(section)
        for name, entry in entries.items() if isinstance(entries, dict) else ():
            seeds = entry.get("seeds") if isinstance(entry, dict) else None
            if isinstance(seeds, dict):
                counts += [(f"{section}/{name}/seeds/{scale}", count) for scale, count in seeds.items()]
            elif seeds is not None:
                counts.append((f"{section}/{name}/seeds", seeds))
    for where, count in counts:
        if isinstance(count, int) and not isinstance(count, bool) and count > MAX_SEEDS:
            raise InputError(
                f"{source}: entry {where}: {count} seeds is more than the {MAX_SEEDS} segbench allows "
                f"(each seed is a full training run); use at most {MAX_SEEDS}"
            )


def _check_schema(data: Any, source: str) -> None:
    """``experiments.schema.json`` (jsonschema); skipped where jsonschema is not installed (a bare GPU image:
    the committed registry is schema-checked by the tests, and the cross-reference checks still run)."""
    import jsonschema

    schema = yaml.safe_load(resources.files("segbench.registry").joinpath(SCHEMA_FILE).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(f"{source}: entry {where}: {err.message}; fix that entry (schema: {SCHEMA_FILE})")


def expand_derived_scales(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every derived scale (one with ``base:``) spelled out: the base scale's datasets and
    family overlays deep-merged with its own (a mapping merges key by key, anything else replaces), and
    every table defined at the base (or only those it names in ``tables:``) defined at it too, with its
    ``seeds:`` count. The rehearsal and paper-short scales are the paper scale with a few keys changed, so
    no setting of the paper is written twice."""
    out = copy.deepcopy(data)
    for name, scale in out["scales"].items():
        base_name = scale.pop("base", None)
        if base_name is None:
            continue
        base = data["scales"][base_name]
        seeds, tables = scale.pop("seeds", 1), scale.pop("tables", None)
        for key in ("datasets", "families"):
            scale[key] = deep_merge(base.get(key, {}), scale.get(key, {}))
        for table_name, table in out["tables"].items():
            if base_name in table["seeds"] and (tables is None or table_name in tables):
                table["seeds"][name] = int(seeds)
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` overlaid by ``over``: nested mappings merge key by key; other values of ``over`` win."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check_derived_scales(data: dict[str, Any], source: str) -> None:
    scales = data["scales"]
    for name, scale in scales.items():
        unknown_runs = set(scale.get("ci_runs", [])) - set(data["runs"])
        if unknown_runs:
            raise InputError(f"{source}: entry scales/{name}/ci_runs: unknown runs {sorted(unknown_runs)}")
        base = scale.get("base")
        if base is None:
            continue
        where = f"{source}: entry scales/{name}/base"
        if base not in scales:
            raise InputError(f"{where}: unknown scale {base!r}; known: {sorted(scales)}")
        if "base" in scales[base]:
            raise InputError(f"{where}: {base!r} is itself derived; derive from a scale without base:")
        unknown = set(scale.get("tables", [])) - set(data["tables"])
        if unknown:
            raise InputError(f"{source}: entry scales/{name}/tables: unknown tables {sorted(unknown)}")


def _check_references(data: dict[str, Any], source: str) -> None:
    runs, scales = data["runs"], data["scales"]

    def fail(where: str, message: str) -> None:
        raise InputError(f"{source}: entry {where}: {message}")

    if data["default_scale"] not in scales:
        fail("default_scale", f"unknown scale {data['default_scale']!r}; known: {sorted(scales)}")
    from segbench.families import FAMILIES
    from segbench.models.backbone_specs import BACKBONES

    for name, spec in runs.items():
        if spec["family"] not in FAMILIES:
            fail(
                f"runs/{name}/family",
                f"unknown model family {spec['family']!r}; known: {', '.join(FAMILIES)}",
            )
        backbone = spec.get("model", {}).get("backbone")
        if backbone is not None and backbone not in BACKBONES:
            fail(
                f"runs/{name}/model/backbone", f"unknown backbone {backbone!r}; known: {', '.join(BACKBONES)}"
            )
    for scale_name, scale in scales.items():
        # a scale maps the logical datasets of the runs of the tables defined at it (tables' seeds keys)
        needed = {
            run
            for t in data["tables"].values()
            if scale_name in t["seeds"]
            for row in t["rows"]
            for run in _row_runs(row)
            if run in runs
        }
        missing = {runs[run]["dataset"] for run in needed} - set(scale["datasets"])
        if missing:
            fail(f"scales/{scale_name}/datasets", f"no concrete dataset for {sorted(missing)}")
    for name, table in data["tables"].items():
        where = f"tables/{name}"
        columns = table["columns"]
        if set(table["metrics"]) != set(columns):
            fail(f"{where}/metrics", f"must map exactly the columns {columns}")
        # seeds: the scales the table is defined at (its keys) and its seed count at each
        if set(table["seeds"]) - set(scales):
            fail(
                f"{where}/seeds",
                f"unknown scales {sorted(set(table['seeds']) - set(scales))}; known: {sorted(scales)}",
            )
        if data["default_scale"] not in table["seeds"]:
            fail(f"{where}/seeds", f"must give a seed count for the default scale {data['default_scale']!r}")
        for scale_name, count in table["seeds"].items():
            folds = scales[scale_name].get("cross_validation", {}).get("folds")
            if folds is not None and count != folds:
                fail(
                    f"{where}/seeds/{scale_name}",
                    f"scale {scale_name!r} runs {folds}-fold cross-validation "
                    f"(seed k = fold k), so the table needs {folds} seeds there, not {count}",
                )
        row_ids = [row["id"] for row in table["rows"]]
        if len(set(row_ids)) != len(row_ids):
            fail(f"{where}/rows", "row ids must be unique")
        for i, row in enumerate(table["rows"]):
            rwhere = f"{where}/rows/{i} ({row['id']})"
            if len(row["paper_values"]) != len(columns):
                fail(rwhere, f"paper_values has {len(row['paper_values'])} values for {len(columns)} columns")
            kinds = [k for k in ("run", "column_runs", "difference") if k in row]
            if len(kinds) > 1:
                fail(rwhere, f"give only one of run / column_runs / difference, not {kinds}")
            for run in _row_runs(row):
                if run not in runs:
                    fail(rwhere, f"unknown run {run!r}; define it under runs:")
            if "column_runs" in row and set(row["column_runs"]) - set(columns):
                fail(rwhere, f"column_runs names columns outside {columns}")
        for j, direction in enumerate(table.get("directions", [])):
            dwhere = f"{where}/directions/{j}"
            if direction.get("kind", "superiority") != "superiority" and "margin" not in direction:
                fail(dwhere, f"a {direction['kind']} claim needs a margin (in {direction['metric']}'s units)")
            for key in ("better", "worse"):
                if direction[key] not in row_ids:
                    fail(dwhere, f"{key}={direction[key]!r} is not a row id of {name}")
            if direction["metric"] not in columns:
                fail(dwhere, f"metric {direction['metric']!r} is not a column of {name}")
        if "headline" in table and table["headline"] not in columns:
            fail(f"{where}/headline", f"{table['headline']!r} is not a column of {name} ({columns})")
        per_scale = table.get("evaluated_on")
        if isinstance(per_scale, dict):
            unknown = set(per_scale) - set(table["seeds"]) - {EVALUATED_ON_DEFAULT}
            if unknown:
                fail(
                    f"{where}/evaluated_on",
                    f"keys {sorted(unknown)} are neither scales the table is defined at "
                    f"({', '.join(table['seeds'])}) nor {EVALUATED_ON_DEFAULT!r}",
                )
            uncovered = set(table["seeds"]) - set(per_scale)
            if uncovered and EVALUATED_ON_DEFAULT not in per_scale:
                fail(
                    f"{where}/evaluated_on",
                    f"no text for scales {sorted(uncovered)}; add them or a {EVALUATED_ON_DEFAULT!r} key",
                )
    for suite, bench in data.get("benchmarks", {}).items():
        for run in bench.get("runs", []):
            if run not in runs or runs[run]["family"] != suite:
                fail(f"benchmarks/{suite}/runs", f"{run!r} is not a {suite} run under runs:")
    for name, figure in data.get("figures", {}).items():
        where = f"figures/{name}"
        for table in figure.get("tables", []):
            if table not in data["tables"]:
                fail(f"{where}/tables", f"unknown table {table!r}; define it under tables:")
        for entry in figure.get("runs", []):
            run = entry if isinstance(entry, str) else entry["run"]
            if run not in runs:
                fail(f"{where}/runs", f"unknown run {run!r}; define it under runs:")


def _row_runs(row: dict[str, Any]) -> list[str]:
    if "run" in row:
        return [row["run"]]
    if "column_runs" in row:
        return list(dict.fromkeys(row["column_runs"].values()))
    if "difference" in row:
        return [row["difference"]["minuend"], row["difference"]["subtrahend"]]
    return []


def row_runs(row: dict[str, Any]) -> list[str]:
    """The runs a table row needs (none for a reference-only row)."""
    return _row_runs(row)


# ----------------------------------------------------------------------------------------------
# Queries used by the CLI, the Snakefile and dvc.yaml.
# ----------------------------------------------------------------------------------------------


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


def check_scale(scale: str, registry: dict[str, Any] | None = None) -> None:
    known = scales(registry)
    if scale not in known:
        raise InputError(f"unknown scale {scale!r}; choose one of {known} (config key `scale`)")


def table_names(registry: dict[str, Any] | None = None, scale: str | None = None) -> list[str]:
    """The registry's tables; with ``scale``, only those defined at it (the keys of a table's ``seeds``)."""
    tables = (registry or load_registry())["tables"]
    return [name for name, t in tables.items() if scale is None or scale in t["seeds"]]


def table_defined_at(name: str, scale: str, registry: dict[str, Any] | None = None) -> bool:
    """Whether table ``name`` exists at ``scale`` (Mask R-CNN tables do not at the real-data CPU scale)."""
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
    entries = {name: _dataset_entry(name) for name in names}
    return sorted(names, key=lambda n: entries[n].get("source") != "real")


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


def resolve_run(
    run: str, scale: str, seed: int = 0, registry: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The complete config of one run instance: run keys overlaid by the scale's family overlay."""
    reg = registry or load_registry()
    check_scale(scale, reg)
    if run not in reg["runs"]:
        raise InputError(f"unknown run {run!r}; `segbench list --runs` shows the runs")
    spec = reg["runs"][run]
    family = spec["family"]
    overlay = reg["scales"][scale]["families"].get(family, {})
    # The scale's model keys fill in sizes; keys a run sets deliberately win over them.
    model = {**copy.deepcopy(overlay.get("model", {})), **copy.deepcopy(spec["model"])}
    # Per-architecture input sizes (mini: the stride-32 C5 runs see 256 px, an 8 x 8 map, Table 2d)
    inputs = {**overlay.get("input", {}), **overlay.get("input_by_arch", {}).get(model.get("arch"), {})}
    # Per-dataset input and schedule keys (mini: the person-keypoint runs of Tables 4-6 at 320 px, 2000 x 8);
    # the runs on other datasets keep the family's keys, and so their config hashes.
    by_dataset = overlay.get("by_dataset", {}).get(spec["dataset"], {})
    # Per-backbone schedule keys (mini: ResNet-101 with a longer warm-up); other backbones keep their hashes.
    by_backbone = overlay.get("by_backbone", {}).get(model.get("backbone"), {})
    inputs.update(by_dataset.get("input", {}))
    schedule = {
        **overlay.get("schedule", {}),
        **by_backbone.get("schedule", {}),
        **by_dataset.get("schedule", {}),
    }
    dataset_name = dataset_for(run, scale, reg)
    cfg = {
        "run": run,
        "run_id": run_id(run, seed),
        "family": family,
        "scale": scale,
        "seed": int(seed),
        "dataset": {"name": dataset_name, "logical": spec["dataset"], **_dataset_entry(dataset_name)},
        "model": model,
        "input": copy.deepcopy(inputs),
        "schedule": scaled_schedule(schedule, spec.get("budget")),
    }
    imagenet = reg["scales"][scale].get("imagenet")
    if (
        imagenet and family == "maskrcnn"
    ):  # "stand-in": the rehearsal's random ImageNet files (engine/imagenet.py)
        cfg["imagenet"] = imagenet
    if overlay.get("pretraining") and model.get("pretrained", True):
        cfg["pretraining"] = pretraining_spec(model, overlay["pretraining"])
    cross_validation = reg["scales"][scale].get("cross_validation")
    if cross_validation:  # seed k is fold k (segbench.data.biomedical.held_out_split); seeds the RNG too
        folds = int(cross_validation["folds"])
        if not 0 <= int(seed) < folds:
            raise InputError(
                f"seed {seed} at scale {scale!r}: the scale runs {folds}-fold cross-validation "
                f"and seed k is fold k; choose a seed in 0..{folds - 1}"
            )
        cfg["split"] = {"folds": folds, "fold": int(seed)}
    return cfg


def pretraining_spec(model: dict[str, Any], pretraining: dict[str, Any]) -> dict[str, Any]:
    """What a run's backbone is pretrained with at a scale that pretrains in miniature
    (:mod:`segbench.engine.pretrain`): its architecture keys plus the scale's corpus and schedule. Part of
    the run's config (and hash), and the key of the cached weights (:func:`segbench.paths.pretrained_weights`)."""
    backbone = str(model.get("backbone", "resnet50"))
    blocks = model.get("blocks", {})
    blocks = blocks.get(backbone) if isinstance(blocks, dict) else blocks
    if blocks is None:
        raise InputError(f"pretraining: no 'blocks' for backbone {backbone!r} at this scale; add them")
    return {
        "backbone": backbone,
        # "auto" is trainable BatchNorm for a backbone not initialised from ImageNet (models/maskrcnn/backbones.py)
        "norm": "bn" if model.get("norm", "auto") == "auto" else str(model["norm"]),
        "width_divisor": int(model.get("width_divisor", 1)),
        "blocks": [int(b) for b in blocks],
        "corpus": copy.deepcopy(pretraining.get("corpus", {})),
        "schedule": copy.deepcopy(pretraining["schedule"]),
        "seed": int(pretraining.get("seed", 0)),
    }


def pretraining_specs(scale: str, registry: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every distinct backbone pretraining spec the runs of the tables defined at ``scale`` need, by spec
    hash (:func:`segbench.provenance.config_hash`); empty where the scale keeps ImageNet weights."""
    from segbench.provenance import config_hash

    reg = registry or load_registry()
    specs: dict[str, dict[str, Any]] = {}
    for rs in runs_for_tables(table_names(reg, scale), scale, reg):
        spec = resolve_run(rs.run, scale, rs.seed, reg).get("pretraining")
        if spec:
            specs.setdefault(config_hash(spec), spec)
    return specs


def scaled_schedule(schedule: dict[str, Any], budget: float | None) -> dict[str, Any]:
    """The scale's schedule for a run; a run's ``budget`` (e.g. 0.25) multiplies its iterations and its lr
    decay and checkpoint points (at least 1 each), the other keys stay: the runs of an error-vs-compute
    table. Without a budget the schedule is returned as it is (so no other run's config hash changes)."""
    out = copy.deepcopy(schedule)
    if budget is None or not out:
        return out

    def scale(n: Any) -> int:
        return max(1, round(int(n) * float(budget)))

    for key in ("iterations", "checkpoint_every", "warmup_iters"):
        if out.get(key):
            out[key] = scale(out[key])
    if "lr_decay_at" in out:
        out["lr_decay_at"] = [scale(step) for step in out["lr_decay_at"]]
    return out


def _dataset_entry(name: str) -> dict[str, Any]:
    """The dataset registry's entry, part of every resolved config (and so of its hash): never skipped."""
    from segbench.data.registry import dataset_entry

    return copy.deepcopy(dataset_entry(name))
