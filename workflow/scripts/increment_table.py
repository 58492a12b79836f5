"""Every run's weight-increment statistics in one tidy table."""
from lwob.plan.jobs import run_job

run_job(snakemake, "lwob.analysis.increments:write_increment_table",
        stats_csvs=list(snakemake.input.stats), out_csv=snakemake.output.csv)
