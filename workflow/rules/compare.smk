rule compare:
    """A new method (config: methods) against a table's baseline rows under the identical protocol; the
    baseline runs come from the DAG (trained in parallel), the method's own runs from this job."""
    input:
        baselines=lambda wc: run_metrics([wc.table], wc.scale),
    output:
        json=f"{RESULTS}/{{scale}}/compare/{{table}}--{{method}}.json",
        md=f"{RESULTS}/{{scale}}/compare/{{table}}--{{method}}.md",
        csv=f"{RESULTS}/{{scale}}/compare/{{table}}--{{method}}.csv",
    log:
        "logs/{scale}/compare/{table}--{method}.log",
    benchmark:
        "logs/benchmarks/{scale}/compare/{table}--{method}.tsv"
    conda:
        "../../environment.yml"
    params:
        spec=lambda wc: METHODS[(wc.table, wc.method)]["method"],
        seeds=lambda wc: METHODS[(wc.table, wc.method)].get("seeds", 3),
        results=lambda wc, output: root_of(output.json, 3),
        data_root=DATA_ROOT,
    shell:
        "segbench compare --method {params.spec:q} --table {wildcards.table:q} --seeds {params.seeds:q} "
        "--scale {wildcards.scale:q} --results {params.results:q} --data-root {params.data_root:q} > {log:q} 2>&1"
