rule report_table:
    """Render one table's figures and HTML page (and refresh the report index) from its assembled JSON."""
    input:
        table=f"{RESULTS}/{{scale}}/tables/{{table}}.json",
    output:
        page=report(
            f"{REPORTS}/{{scale}}/{{table}}.html",
            caption="../report/table.rst",
            category="Tables",
        ),
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


rule figure:
    """Render one figure (PNG + SVG, or an HTML table) and its manifest."""
    input:
        tables=lambda wc: figure_tables(wc.figure, wc.scale),
    output:
        manifest=f"{REPORTS}/{{scale}}/figures/{{figure}}.json",
    log:
        "logs/{scale}/figures/{figure}.log",
    benchmark:
        "logs/benchmarks/{scale}/figures/{figure}.tsv"
    conda:
        "../../environment.yml"
    params:
        reports=lambda wc, output: root_of(output.manifest, 3),
        results=RESULTS,
        data_root=DATA_ROOT,
    shell:
        "segbench report --scale {wildcards.scale:q} --figure {wildcards.figure:q} "
        "--results {params.results:q} --out {params.reports:q} --data-root {params.data_root:q} > {log:q} 2>&1"
