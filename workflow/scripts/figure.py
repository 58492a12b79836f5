"""A study's figure: Origin vs Adv per method, or score against trainable parameters (budget)."""
from lwob.jobs import run_job

cfg = snakemake.config
run_job(
    snakemake,
    "lwob.figures:write_study_figure",
    metrics_csv=snakemake.input.metrics,
    study=dict(snakemake.params.study),
    tasks=cfg["tasks"],
    methods=cfg["methods"],
    models=cfg["models"],
    out_pdf=snakemake.output.pdf,
    out_png=snakemake.output.png,
    runs_csv=snakemake.input.runs[0] if snakemake.input.runs else None,
)
