"""Render one study's table (LaTeX from its jinja2 template, plus a CSV twin)."""
from lwob.jobs import run_job

cfg = snakemake.config
run_job(
    snakemake,
    "lwob.tables:write_study_table",
    summary_csv=snakemake.input.summary,
    study=dict(snakemake.params.study),
    tasks=cfg["tasks"],
    models=cfg["models"],
    methods=cfg["methods"],
    template_path=snakemake.input.template,
    out_tex=snakemake.output.tex,
    out_csv=snakemake.output.csv,
    reference_csv=snakemake.input.reference[0] if snakemake.input.reference else None,
    skipped=dict(snakemake.params.skipped),
)
