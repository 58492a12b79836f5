"""Every selection grid, its validation scores and the chosen cell, in one CSV."""
from lwob.jobs import run_job

run_job(snakemake, "lwob.selection:write_selection_table",
        choices=list(snakemake.input.choices), out_csv=snakemake.output.csv)
