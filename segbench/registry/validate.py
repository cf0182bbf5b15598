"""Loading and validating the experiment registry: the schema (``experiments.schema.json``), the derived
scales, and the cross-references a schema cannot express (every name resolves, every seed count is sane)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
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
#: the metric paths a table's ``scores:`` may name: the ISBI challenge's current scores, recorded by the
#: evaluation under ``isbi.thinned`` (:data:`segbench.metrics.isbi_thinned.SCORES`); as the schema's enum
SCORE_METRICS = ("isbi.thinned.v_rand", "isbi.thinned.v_info")


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


Fail = Callable[[str, str], None]  # fail(where, message): one line naming the registry file and entry


def _check_references(data: dict[str, Any], source: str) -> None:
    """The cross-references a schema cannot express, each check naming the entry it failed on."""

    def fail(where: str, message: str) -> None:
        raise InputError(f"{source}: entry {where}: {message}")

    if data["default_scale"] not in data["scales"]:
        fail("default_scale", f"unknown scale {data['default_scale']!r}; known: {sorted(data['scales'])}")
    _check_runs(data, fail)
    _check_overrides(data, fail)
    _check_scale_datasets(data, fail)
    _check_pretrained_from(data, fail)
    for name, table in data["tables"].items():
        _check_table(name, table, data, fail)
    for suite, bench in data.get("benchmarks", {}).items():
        for run in bench.get("runs", []):
            if run not in data["runs"] or data["runs"][run]["family"] != suite:
                fail(f"benchmarks/{suite}/runs", f"{run!r} is not a {suite} run under runs:")


def _check_runs(data: dict[str, Any], fail: Fail) -> None:
    """Every run names a registered family and (Mask R-CNN) backbone."""
    from segbench.families import FAMILIES
    from segbench.models.backbone_specs import BACKBONES

    for name, spec in data["runs"].items():
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


def _check_overrides(data: dict[str, Any], fail: Fail) -> None:
    """A scale's ``by_backbone`` / ``by_task`` / ``by_dataset`` keys name a backbone, task or logical dataset
    some run of the family has: an override for nothing (a misspelling) would silently change no run."""
    for scale_name, scale in data["scales"].items():
        for family, overlay in scale["families"].items():
            runs = [spec for spec in data["runs"].values() if spec["family"] == family]
            known = {
                "by_backbone": {spec.get("model", {}).get("backbone") for spec in runs} - {None},
                "by_task": {task for spec in runs for task in spec.get("model", {}).get("tasks", ())},
                "by_dataset": {spec["dataset"] for spec in runs},
            }
            for kind, names in known.items():
                for name in overlay.get(kind, {}):
                    if name not in names:
                        fail(
                            f"scales/{scale_name}/families/{family}/{kind}/{name}",
                            f"no {family} run has {kind[3:]} {name!r}; known: {', '.join(sorted(names))}",
                        )


def _check_pretrained_from(data: dict[str, Any], fail: Fail) -> None:
    """A scale's ``pretrained_from`` names another scale that pretrains its backbones with the same spec
    (each family's ``pretraining`` block equal), so the spec hashes, and the files, are that scale's."""
    scales = data["scales"]
    for name, scale in scales.items():
        home = scale.get("pretrained_from")
        if home is None:
            continue
        where = f"scales/{name}/pretrained_from"
        if home not in scales or home == name:
            fail(where, f"must name another scale; known: {sorted(scales)}")
        for family, overlay in scale["families"].items():
            theirs = scales[home]["families"].get(family, {}).get("pretraining")
            if overlay.get("pretraining") is not None and overlay["pretraining"] != theirs:
                fail(
                    f"scales/{name}/families/{family}/pretraining",
                    f"differs from scale {home!r}'s, whose pretrained backbones the scale uses; make them equal",
                )


def _check_scale_datasets(data: dict[str, Any], fail: Fail) -> None:
    """A scale maps the logical datasets of the runs of the tables defined at it (tables' seeds keys)."""
    runs = data["runs"]
    for scale_name, scale in data["scales"].items():
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


def _check_table(name: str, table: dict[str, Any], data: dict[str, Any], fail: Fail) -> None:
    """A table's columns, seeds per scale, rows, claims, headline and evaluated_on."""
    where, columns, scales = f"tables/{name}", table["columns"], data["scales"]
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
    row_ids = _check_rows(where, table, data["runs"], fail)
    for j, direction in enumerate(table.get("directions", [])):
        dwhere = f"{where}/directions/{j}"
        if direction.get("kind", "superiority") != "superiority" and "margin" not in direction:
            fail(dwhere, f"a {direction['kind']} claim needs a margin (in {direction['metric']}'s units)")
        for key in ("better", "worse"):
            if direction[key] not in row_ids:
                fail(dwhere, f"{key}={direction[key]!r} is not a row id of {name}")
        if direction["metric"] not in columns:
            fail(dwhere, f"metric {direction['metric']!r} is not a column of {name}")
    curve = table.get("compute_curve")
    if curve:
        named = [*curve["rows"], curve["reference"], curve["target_row"]]
        unknown = [r for r in named if r not in row_ids]
        if unknown:
            fail(f"{where}/compute_curve", f"{unknown} are not row ids of {name}")
        if curve["reference"] not in curve["rows"]:
            fail(f"{where}/compute_curve", f"reference {curve['reference']!r} must be one of its rows")
    _check_scores(where, table, fail)
    if "headline" in table and table["headline"] not in columns:
        fail(f"{where}/headline", f"{table['headline']!r} is not a column of {name} ({columns})")
    _check_evaluated_on(where, table, fail)


def _check_scores(where: str, table: dict[str, Any], fail: Fail) -> None:
    """``scores:`` name metrics of :data:`SCORE_METRICS` under names that are not columns (checked here too,
    since the schema is skipped without jsonschema)."""
    for name, key in (table.get("scores") or {}).items():
        if key not in SCORE_METRICS:
            fail(f"{where}/scores/{name}", f"unknown score metric {key!r}; known: {', '.join(SCORE_METRICS)}")
        if name in table["columns"]:
            fail(f"{where}/scores/{name}", f"{name!r} is a column of the table; give the score another name")


def _check_rows(where: str, table: dict[str, Any], runs: dict[str, Any], fail: Fail) -> list[str]:
    """Unique row ids, one value per column, one kind per row, known runs; returns the row ids."""
    columns = table["columns"]
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
    return row_ids


def _check_evaluated_on(where: str, table: dict[str, Any], fail: Fail) -> None:
    """``evaluated_on`` per scale names only the table's scales, and covers them all (or has a default)."""
    per_scale = table.get("evaluated_on")
    if not isinstance(per_scale, dict):
        return
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


def _row_runs(row: dict[str, Any]) -> list[str]:
    if "run" in row:
        return [row["run"]]
    if "column_runs" in row:
        return list(dict.fromkeys(row["column_runs"].values()))
    if "difference" in row:
        return [row["difference"]["minuend"], row["difference"]["subtrahend"]]
    return []
