rule report_table:
    """Render one table's HTML page (and refresh the report index) from its assembled JSON."""
    input:
        table=f"{RESULTS}/{{scale}}/tables/{{table}}.json",
    output:
        page=f"{REPORTS}/{{scale}}/{{table}}.html",
    log:
        "logs/{scale}/reports/{table}.log",
    benchmark:
        "logs/benchmarks/{scale}/reports/{table}.tsv"
    conda:
        "../../environment.yml"
    params:
        results=lambda wc, input: root_of(input.table, 3),
        reports=lambda wc, output: root_of(output.page, 2),
    shell:
        "segbench report --scale {wildcards.scale:q} --table {wildcards.table:q} "
        "--results {params.results:q} --out {params.reports:q} > {log:q} 2>&1"
