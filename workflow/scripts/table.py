"""Render one study's table (LaTeX from its jinja2 template, plus a CSV twin)."""
from lwob.plan.jobs import run_job

shown = snakemake.params.shown  # display names, aliases, method types, task columns
run_job(
    snakemake,
    "lwob.report.tables:write_study_table",
    summary_csv=snakemake.input.summary,
    study=dict(snakemake.params.study),
    tasks=shown["tasks"],
    models=shown["models"],
    methods=shown["methods"],
    template_path=snakemake.input.template,
    out_tex=snakemake.output.tex,
    out_csv=snakemake.output.csv,
    reference_csv=snakemake.input.reference[0] if snakemake.input.reference else None,
    skipped=dict(snakemake.params.skipped),
)
