"""Every selection grid, its validation scores and the chosen cell, in one CSV."""
from lwob.plan.jobs import run_job

run_job(snakemake, "lwob.analysis.selection:write_selection_table",
        choices=list(snakemake.input.choices), out_csv=snakemake.output.csv)
