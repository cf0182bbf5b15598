rule train:
    """Train one run instance (run x scale x seed); resumes from its newest checkpoint."""
    input:
        # a real dataset's MANIFEST (ancient) or nothing for a synthetic one (common.smk: dataset_inputs);
        # the dataset's definition is part of the config hash, so a changed one changes the params below.
        data=dataset_inputs,
    output:
        done=f"{RESULTS}/{{scale}}/runs/{{run}}-seed{{seed}}/train_done.json",
    log:
        "logs/{scale}/train/{run}-seed{seed}.log",
    benchmark:
        "logs/benchmarks/{scale}/train/{run}-seed{seed}.tsv"
    conda:
        "../../environment.yml"
    threads: config.get("train_threads", 1)
    resources:
        gpu=gpus_requested,
    params:
        # The resolved config's hash: editing a run's registry entry or its scale reruns exactly the
        # affected runs (Snakemake's params rerun trigger), not the whole DAG.
        config_hash=run_config_hash,
        results=lambda wc, output: root_of(output.done, 4),
        data_root=DATA_ROOT,
    shell:
        "OMP_NUM_THREADS={threads} segbench train --run {wildcards.run:q} --scale {wildcards.scale:q} "
        "--seed {wildcards.seed:q} --results {params.results:q} --data-root {params.data_root:q} "
        "--gpus {resources.gpu} > {log:q} 2>&1"
