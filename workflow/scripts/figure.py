"""A study's figure: Origin vs Adv per method, or score against trainable parameters (budget)."""
from lwob.plan.jobs import run_job

shown = snakemake.params.shown  # display names, aliases, method types, task columns
run_job(
    snakemake,
    "lwob.report.figures:write_study_figure",
    metrics_csv=snakemake.input.metrics,
    study=dict(snakemake.params.study),
    tasks=shown["tasks"],
    methods=shown["methods"],
    models=shown["models"],
    out_pdf=snakemake.output.pdf,
    out_png=snakemake.output.png,
    runs_csv=snakemake.input.runs[0] if snakemake.input.runs else None,
)
