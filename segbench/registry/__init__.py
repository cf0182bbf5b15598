"""The experiment registry: tables -> rows -> runs, the papers' values, and the scales.

One YAML file (``experiments.yaml`` beside this module), validated by ``experiments.schema.json`` plus
the cross-references a schema cannot express. segbench, the Snakefile and dvc.yaml all read it through
this module; nothing else lists a table, a row or a run.
"""

from __future__ import annotations

from segbench.registry.query import (
    RunSeed,
    absolute_values,
    artifacts,
    check_scale,
    check_table_at_scale,
    dataset_for,
    datasets_for_scale,
    evaluated_on,
    figure_runs,
    figure_tables,
    get_table,
    headline_column,
    real_datasets,
    row_runs,
    run_id,
    runs_for_tables,
    runs_of_family,
    scales,
    seeds_for_run,
    split_run_id,
    table_defined_at,
    table_names,
)
from segbench.registry.resolve import (
    pretraining_spec,
    pretraining_specs,
    resolve_run,
    scaled_schedule,
)
from segbench.registry.validate import (
    EVALUATED_ON_DEFAULT,
    MAX_SEEDS,
    REGISTRY_FILE,
    SCHEMA_FILE,
    deep_merge,
    expand_derived_scales,
    load_registry,
    registry_path,
    validate_registry,
)

__all__ = [
    "EVALUATED_ON_DEFAULT",
    "MAX_SEEDS",
    "REGISTRY_FILE",
    "RunSeed",
    "absolute_values",
    "SCHEMA_FILE",
    "artifacts",
    "check_scale",
    "check_table_at_scale",
    "dataset_for",
    "datasets_for_scale",
    "deep_merge",
    "evaluated_on",
    "expand_derived_scales",
    "figure_runs",
    "figure_tables",
    "get_table",
    "headline_column",
    "load_registry",
    "pretraining_spec",
    "pretraining_specs",
    "real_datasets",
    "registry_path",
    "resolve_run",
    "row_runs",
    "run_id",
    "runs_for_tables",
    "runs_of_family",
    "scaled_schedule",
    "scales",
    "seeds_for_run",
    "split_run_id",
    "table_defined_at",
    "table_names",
    "validate_registry",
]
