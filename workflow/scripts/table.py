"""Render one study's table (LaTeX from its jinja2 template, plus a CSV twin)."""
from lwob.jobs import job_log

with job_log(snakemake):
    import pandas as pd

    from lwob.tables import robustness_table

    cfg = snakemake.config
    reference = pd.read_csv(snakemake.input.reference) if snakemake.input.get("reference") else None
    robustness_table(
        pd.read_csv(snakemake.input.summary),
        snakemake.params.study,
        cfg["tasks"],
        cfg["models"],
        cfg["methods"],
        template_path=snakemake.input.template,
        out_tex=snakemake.output.tex,
        out_csv=snakemake.output.csv,
        reference=reference,
    )
