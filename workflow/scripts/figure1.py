"""The paper's Figure 1: histograms of the chosen module's increments per method."""
from lwob.plan.jobs import run_job

shown = snakemake.params.shown  # display names, aliases, method types, task columns
run_job(
    snakemake,
    "lwob.analysis.increments:write_increment_figure",
    selected=dict(zip(snakemake.params.methods, snakemake.input.selected)),
    methods=shown["methods"],
    models=shown["models"],
    layout=snakemake.params.increments.get("layout", "faceted"),
    out_pdf=snakemake.output.pdf,
    out_png=snakemake.output.png,
    out_csv=snakemake.output.csv,
)
