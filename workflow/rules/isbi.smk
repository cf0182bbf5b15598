# ISBI 2012 challenge submissions (docs/isbi_submission.md): the test stack predicted by a trained U-Net or
# sliding-window run, in the organisers' format, beside the run. `isbi_submission` builds them for the
# U-Net Table 1 runs of the configured scale (at real_cpu: the challenge's test-volume.tif must be in the
# isbi2012 dataset directory; at smoke and mini: the em generator's stand-in).

rule isbi_submission_run:
    """Predict the test stack with one trained run (thin: `segbench isbi submission`)."""
    input:
        done=f"{RESULTS}/{{scale}}/runs/{{run}}-seed{{seed}}/train_done.json",
        data=dataset_inputs,
    output:
        tif=f"{RESULTS}/{{scale}}/runs/{{run}}-seed{{seed}}/isbi_submission.tif",
        record=f"{RESULTS}/{{scale}}/runs/{{run}}-seed{{seed}}/isbi_submission.json",
    log:
        "logs/{scale}/isbi_submission/{run}-seed{seed}.log",
    conda:
        "../../environment.yml"
    threads: config.get("train_threads", 1)
    params:
        results=lambda wc, output: root_of(output.record, 4),
        data_root=DATA_ROOT,
    shell:
        "OMP_NUM_THREADS={threads} segbench isbi submission --run {wildcards.run:q} --scale {wildcards.scale:q} "
        "--seed {wildcards.seed:q} --results {params.results:q} --data-root {params.data_root:q} "
        "--out {output.tif:q} > {log:q} 2>&1"


rule isbi_submission:
    """Submissions of every U-Net / sliding-window run of U-Net Table 1 at the configured scale."""
    input:
        isbi_submission_records(SCALE) if "unet_table1" in table_names(REGISTRY, SCALE) else [],
    localrule: True
