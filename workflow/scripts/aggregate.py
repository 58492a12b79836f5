"""Tidy metrics, per-seed summary and the per-run cost/provenance table."""
from lwob.jobs import job_log

with job_log(snakemake):
    from lwob.aggregate import write_all

    write_all(
        snakemake.input.evals,
        snakemake.input.records,
        snakemake.output.metrics,
        snakemake.output.summary,
        snakemake.output.runs,
    )
