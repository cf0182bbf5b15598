rule compare:
    """A new method (config: methods) against a table's baseline rows under the identical protocol; the
    baseline runs come from the DAG (trained in parallel), the method's own runs from this job. The job
    depends on the method's code (params.code, and a sentinel for a clone without Snakemake's metadata):
    editing the plugin or bumping its version reruns it, and `segbench compare` retrains the method's runs."""
    input:
        baselines=lambda wc: run_metrics([wc.table], wc.scale),
        code=stale_comparison,
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
    threads: config.get("train_threads", 1)
    params:
        spec=method_spec,
        code=lambda wc: method_code(method_spec(wc)),
        seeds=lambda wc: int(METHODS[(wc.table, wc.method)].get("seeds", 3)),
        results=lambda wc, output: root_of(output.json, 3),
        data_root=DATA_ROOT,
    shell:
        "OMP_NUM_THREADS={threads} segbench compare --method {params.spec:q} --table {wildcards.table:q} "
        "--seeds {params.seeds:q} --scale {wildcards.scale:q} --results {params.results:q} "
        "--data-root {params.data_root:q} --threads {threads} > {log:q} 2>&1"


rule report_compare:
    """The comparison's page (reports/<scale>/compare/<table>--<method>.html, linked from the index and the
    table's page), written with the report's other pages from the figures already rendered."""
    input:
        comparison=f"{RESULTS}/{{scale}}/compare/{{table}}--{{method}}.json",
        table_page=f"{REPORTS}/{{scale}}/{{table}}.html",
    output:
        page=f"{REPORTS}/{{scale}}/compare/{{table}}--{{method}}.html",
    log:
        "logs/{scale}/reports/compare/{table}--{method}.log",
    conda:
        "../../environment.yml"
    params:
        results=lambda wc, input: root_of(input.comparison, 3),
        reports=lambda wc, output: root_of(output.page, 3),
    shell:
        "segbench report --scale {wildcards.scale:q} --no-figures --results {params.results:q} "
        "--out {params.reports:q} > {log:q} 2>&1"
