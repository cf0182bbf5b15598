# Root shim: the workflow lives in workflow/Snakefile (Snakemake's recommended layout). Keeping a root
# Snakefile lets `snakemake reproduce_table2` run from the repository root with profiles/default.
include: "workflow/Snakefile"
