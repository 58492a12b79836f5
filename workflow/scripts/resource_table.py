"""The resource study's table (LaTeX + CSV), per-task training costs (CSV) and figure."""
from lwob.plan.jobs import run_job

shown = snakemake.params.shown  # display names, aliases, method types, task columns
out = snakemake.output
run_job(
    snakemake,
    "lwob.analysis.resources.table:write_resource_study",
    probes=list(snakemake.input.probes),
    records=list(snakemake.input.records),
    tokenized=dict(snakemake.params.tokenized),
    study=dict(snakemake.params.study),
    models=shown["models"],
    methods=shown["methods"],
    tasks=shown["tasks"],
    template_path=snakemake.input.template,
    out_tex=out.tex,
    out_csv=out.csv,
    out_training_csv=out.training,
    out_pdf=out.pdf,
    out_png=out.png,
)
