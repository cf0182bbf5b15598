rule train:
    """Train one run instance (run x scale x seed); resumes from its newest checkpoint."""
    input:
        # a real dataset's MANIFEST (ancient) or nothing for a synthetic one (common.smk: dataset_inputs);
        # the dataset's definition is part of the config hash, so a changed one changes the params below.
        data=dataset_inputs,
        # the scale's miniature-pretrained backbone (mini, committed; none where ImageNet weights are used),
        # ancient: its file date never retrains a run; a changed spec changes the file name (and the run's
        # config hash), which is what retrains.
        pretrained=pretrained_inputs,
        # a committed run trained with another config than the registry's (common.smk: stale_training)
        stale=stale_training,
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
    # one process per granted GPU: `torchrun --standalone --nproc_per_node=N -m segbench train ...` for N > 1
    # (LAUNCH, common.smk); `segbench train --gpus N` refuses N > 1 in a single process
    shell:
        "OMP_NUM_THREADS={threads} {LAUNCH:{resources.gpu}} train --run {wildcards.run:q} --scale {wildcards.scale:q} "
        "--seed {wildcards.seed:q} --results {params.results:q} --data-root {params.data_root:q} "
        # the full output goes to the log; its progress lines (segbench.progress) also to the console
        "--gpus {resources.gpu} 2>&1 | tee {log:q} | {{ grep --line-buffered '^progress ' || true; }}"


rule pretrain:
    """Pretrain one backbone spec of a CPU scale on the glyphs corpus (segbench/engine/pretrain.py): the
    miniature of the paper's ImageNet initialisation. The mini weights are committed, pinned by the sha256
    of the .json record beside each (they play the downloaded ImageNet files' part; committed as .pt.xz,
    decompressed on first use), so this rule runs only for a scale or spec without them; `make reproduce
    FORCE=1` (--forcerun train) keeps them, and `segbench pretrain --force` pins new ones."""
    output:
        record=f"{RESULTS}/{{scale}}/pretrained/{{backbone}}-{{spec}}.json",
        stored=f"{RESULTS}/{{scale}}/pretrained/{{backbone}}-{{spec}}.pt.xz",
    log:
        "logs/{scale}/pretrain/{backbone}-{spec}.log",
    benchmark:
        "logs/benchmarks/{scale}/pretrain/{backbone}-{spec}.tsv"
    conda:
        "../../environment.yml"
    threads: config.get("train_threads", 1)
    params:
        results=lambda wc, output: root_of(output.record, 3),
    shell:
        "OMP_NUM_THREADS={threads} segbench pretrain --scale {wildcards.scale:q} --spec {wildcards.spec:q} "
        "--results {params.results:q} > {log:q} 2>&1"


rule pretrain_backbones:
    """Every backbone the configured scale pretrains (the cold-cache cost, on its own)."""
    input:
        [pretrained_file(SCALE, spec) for spec in pretraining_specs(SCALE, REGISTRY).values()],
    localrule: True

