"""Tidy metrics, per-seed summary and the per-run cost/provenance table."""
from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.analysis.aggregate:write_all",
    eval_jsons=list(snakemake.input.evals),
    train_jsons=list(snakemake.input.records),
    metrics_csv=snakemake.output.metrics,
    summary_csv=snakemake.output.summary,
    runs_csv=snakemake.output.runs,
)
