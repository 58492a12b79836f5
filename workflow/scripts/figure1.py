"""The paper's Figure 1: histograms of the chosen module's increments per method."""
from lwob.jobs import run_job

cfg = snakemake.config
run_job(
    snakemake,
    "lwob.increments:write_increment_figure",
    selected=dict(zip(snakemake.params.methods, snakemake.input.selected)),
    methods=cfg["methods"],
    models=cfg["models"],
    layout=snakemake.params.increments.get("layout", "faceted"),
    out_pdf=snakemake.output.pdf,
    out_png=snakemake.output.png,
    out_csv=snakemake.output.csv,
)
