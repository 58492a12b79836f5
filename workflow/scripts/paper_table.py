"""Ours beside the paper's numbers for one study, with the difference."""
from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.report.tables:write_paper_comparison",
    table_csv=snakemake.input.table,
    study=dict(snakemake.params.study),
    study_name=snakemake.wildcards.study,
    template_path=snakemake.input.template,
    out_tex=snakemake.output.tex,
    out_csv=snakemake.output.csv,
    note=snakemake.params.note,
)
