rule evaluate:
    """Evaluate a trained run instance on its held-out split into metrics.json."""
    input:
        done=f"{RESULTS}/{{scale}}/runs/{{run}}-seed{{seed}}/train_done.json",
        data=dataset_inputs,
    output:
        metrics=f"{RESULTS}/{{scale}}/runs/{{run}}-seed{{seed}}/metrics.json",
    log:
        "logs/{scale}/evaluate/{run}-seed{seed}.log",
    benchmark:
        "logs/benchmarks/{scale}/evaluate/{run}-seed{seed}.tsv"
    conda:
        "../../environment.yml"
    threads: config.get("train_threads", 1)
    # one GPU where the training used any (SLURM: --gpus=1; locally the job claims one id of
    # SEGBENCH_GPU_POOL, so concurrent evaluations do not all land on cuda:0)
    resources:
        gpu=eval_gpus_requested,
    params:
        config_hash=run_config_hash,
        results=lambda wc, output: root_of(output.metrics, 4),
        data_root=DATA_ROOT,
    shell:
        "OMP_NUM_THREADS={threads} segbench evaluate --run {wildcards.run:q} --scale {wildcards.scale:q} "
        "--seed {wildcards.seed:q} --results {params.results:q} --data-root {params.data_root:q} "
        "--gpus {resources.gpu} > {log:q} 2>&1"
