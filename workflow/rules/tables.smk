rule table:
    """Assemble one paper table from its runs' metrics (reproduced, paper, delta, seeds, directions)."""
    input:
        metrics=lambda wc: run_metrics([wc.table], wc.scale),
        # an assembled table whose run instances differ from the registry's (common.smk: stale_table)
        stale=stale_table,
    output:
        json=f"{RESULTS}/{{scale}}/tables/{{table}}.json",
        csv=f"{RESULTS}/{{scale}}/tables/{{table}}.csv",
        md=f"{RESULTS}/{{scale}}/tables/{{table}}.md",
    log:
        "logs/{scale}/tables/{table}.log",
    benchmark:
        "logs/benchmarks/{scale}/tables/{table}.tsv"
    conda:
        "../../environment.yml"
    params:
        results=lambda wc, output: root_of(output.json, 3),
    shell:
        "segbench table {wildcards.table:q} --scale {wildcards.scale:q} --results {params.results:q} > {log:q} 2>&1"
