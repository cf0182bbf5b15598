# Helpers shared by the rules: paths of a run instance and of its dataset, read from the registry.
import os
from pathlib import Path

from segbench.launch import Launcher, eval_gpus_needed, gpus_needed
from segbench.paths import pretraining_scale
from segbench.provenance import config_hash
from segbench.data import dataset_entry
from segbench.registry import dataset_for, pretraining_specs, resolve_run
from segbench.status import STALE, run_state, table_runs_changed
from segbench.reporting import FIGURES


def root_of(path, levels):
    """The directory ``levels`` above a file: recovers a root (results, data) from a rule's own
    input/output path, so rules work without a shared filesystem."""
    return str(Path(path).parents[levels - 1])


def run_config(wildcards):
    return resolve_run(wildcards.run, wildcards.scale, int(wildcards.seed), REGISTRY)


def run_config_hash(wildcards):
    return config_hash(run_config(wildcards))


def dataset_manifest(wildcards):
    """The MANIFEST.json that proves the run's dataset (at this scale) is complete."""
    return f"{DATA_ROOT}/{dataset_for(wildcards.run, wildcards.scale, REGISTRY)}/MANIFEST.json"


def dataset_inputs(wildcards):
    """A train/evaluate job's data dependency: a real dataset's MANIFEST (downloaded or located by the
    prepare_dataset job, before any GPU job starts), as ancient() so that re-verifying it retrains
    nothing. A synthetic dataset is no DAG input: the job generates it on first use under a lock
    (deterministic, seconds), so a fresh clone or a deleted data/ does not make every run that uses the
    dataset look updated."""
    name = dataset_for(wildcards.run, wildcards.scale, REGISTRY)
    while dataset_entry(name)["source"] == "derived":  # derived on first use from its source: the
        name = dataset_entry(name)["derive_from"]       # source's MANIFEST, where real, is the input
    if dataset_entry(name)["source"] == "synthetic":
        return []
    return [ancient(f"{DATA_ROOT}/{name}/MANIFEST.json")]


def pretrained_inputs(wildcards):
    """The record of the run's miniature-pretrained backbone (made by rule pretrain), which pins the
    weights' sha256, as ancient(); none at scales that initialise from ImageNet. The committed form of the
    weights is the .pt.xz beside it; the .pt is a local copy the run decompresses (engine/pretrain.py)."""
    cfg = run_config(wildcards)
    spec = cfg.get("pretraining")
    return [ancient(pretrained_file(pretraining_scale(cfg), spec))] if spec else []


def pretrained_file(scale, spec):
    """The backbone's record (segbench.paths.pretrained_weights with .json), relative to RESULTS as
    the outputs of the rules are."""
    return f"{RESULTS}/{scale}/pretrained/{spec['backbone']}-{config_hash(spec)}.json"


def stale_training(wildcards):
    """A run whose train_done.json records another config than the registry now gives (segbench.status):
    a sentinel input, results/<scale>/retrain/<run id>.<new hash>, created here (gitignored), newer than
    the stale record, so the DAG retrains the run. (A missing input alone would not: Snakemake does not
    rerun a job with present outputs for a missing intermediate input.) Snakemake's params trigger sees the same change only with its .snakemake metadata,
    which a fresh clone lacks; without this, a registry edit in a clone would retrain nothing."""
    cfg = run_config(wildcards)
    run_dir = Path(RESULTS) / wildcards.scale / "runs" / cfg["run_id"]
    sentinel = Path(RESULTS) / wildcards.scale / "retrain" / f"{cfg['run_id']}.{config_hash(cfg)}"
    return [mark(sentinel, stale=run_state(cfg, run_dir).state == STALE)]


def mark(sentinel, stale):
    """A sentinel input that is always there (so a rule's set of inputs stays the same before and after
    the retrain it causes): created dated now when ``stale`` (newer than the stale record, so Snakemake's
    mtime rule reruns the job), else dated 1970 (never newer than anything)."""
    sentinel.parent.mkdir(parents=True, exist_ok=True)
    if stale:
        sentinel.touch()  # now, whatever it was
    elif not sentinel.exists():
        sentinel.touch()
        os.utime(sentinel, (0, 0))
    return str(sentinel)


def stale_table(wildcards):
    """A table assembled from other run instances than the registry now lists (a seed or row added or
    removed): a sentinel input, as for stale_training, so the DAG re-assembles it and builds the new runs."""
    wanted = sorted(rs.run_id for rs in runs_for_tables([wildcards.table], wildcards.scale, REGISTRY))
    sentinel = Path(RESULTS) / wildcards.scale / "retrain" / f"table-{wildcards.table}.{config_hash(wanted)}"
    return [mark(sentinel, stale=table_runs_changed(wildcards.table, wildcards.scale, Path(RESULTS), REGISTRY))]


def gpus_requested(wildcards):
    """GPUs a training job asks for (segbench.launch.gpus_needed: the paper's 8 for Mask R-CNN at paper
    scale, 1 for the U-Net; 0 on the CPU scales and the rehearsal). Snakemake caps it at --resources gpu=N;
    the job runs as that many torchrun processes (LAUNCH)."""
    return gpus_needed(run_config(wildcards), REGISTRY)


def eval_gpus_requested(wildcards):
    """GPUs an evaluation job asks for: one where the training used a GPU, else none."""
    return eval_gpus_needed(run_config(wildcards), REGISTRY)


# `{LAUNCH:{resources.gpu}}` in a shell command: `segbench` for 0-1 granted GPUs, `torchrun --standalone
# --nproc_per_node=N -m segbench` for N > 1 (segbench.launch.Launcher: the granted count is known only when
# Snakemake formats the command).
LAUNCH = Launcher()


def run_metrics(tables, scale):
    return [f"{RESULTS}/{scale}/runs/{rs.run_id}/metrics.json" for rs in runs_for_tables(tables, scale, REGISTRY)]


def table_files(tables, scale):
    return [f"{RESULTS}/{scale}/tables/{t}.{ext}" for t in tables for ext in ("json", "csv", "md")]


def figure_tables(figure, scale):
    """A figure's inputs: the assembled tables it illustrates (so its runs exist); run-wide figures
    (training curves, metrics per run) wait for every table defined at the scale."""
    tables = FIGURES[figure].tables or table_names(REGISTRY, scale)
    return [f"{RESULTS}/{scale}/tables/{t}.json" for t in tables]


def not_defined_at_scale(artifact, missing):
    """Input function of the target of an artifact with tables not defined at SCALE: stops with one line."""

    def fail(wildcards):
        raise WorkflowError(f"reproduce_{artifact}: {', '.join(missing)} not defined at scale {SCALE!r} "
                            f"(tables at {SCALE}: {', '.join(table_names(REGISTRY, SCALE))})")

    return fail


def method_spec(wildcards):
    return METHODS[(wildcards.table, wildcards.method)]["method"]


def stale_comparison(wildcards):
    """A comparison computed with other plugin code than the method now has (distribution, version or
    source hash: segbench.plugin_identity): a sentinel input newer than it, as stale_training does for runs,
    so the job reruns (and retrains the method's runs) in a fresh clone too, without .snakemake metadata."""
    code = method_code(method_spec(wildcards))
    name = f"compare-{wildcards.table}--{wildcards.method}.{config_hash(code)}"
    sentinel = Path(RESULTS) / wildcards.scale / "retrain" / name
    output = Path(RESULTS) / wildcards.scale / "compare" / f"{wildcards.table}--{wildcards.method}.json"
    return [mark(sentinel, stale=comparison_stale(output, method_spec(wildcards)))]


def isbi_submission_records(scale):
    """The submission records of the U-Net and sliding-window runs of U-Net Table 1 at ``scale``
    (rules/isbi.smk)."""
    from segbench.isbi_submission import FAMILIES

    return [
        f"{RESULTS}/{scale}/runs/{rs.run}-seed{rs.seed}/isbi_submission.json"
        for rs in runs_for_tables(["unet_table1"], scale, REGISTRY)
        if resolve_run(rs.run, scale, rs.seed, REGISTRY)["family"] in FAMILIES
    ]
