rule prepare_dataset:
    """Generate a synthetic dataset, or locate/verify/download a real one, into the data root."""
    output:
        manifest=f"{DATA_ROOT}/{{dataset}}/MANIFEST.json",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.tsv"
    conda:
        "../../environment.yml"
    params:
        data_root=lambda wc, output: root_of(output.manifest, 2),
    shell:
        "segbench data prepare {wildcards.dataset:q} --data-root {params.data_root:q} > {log:q} 2>&1"
