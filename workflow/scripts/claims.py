"""The paper's claims as checks on our results, with verdicts and the numbers behind them."""
from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.analysis.claims:write_claims",
    summary_csv=snakemake.input.summary,
    comparisons_csv=snakemake.input.comparisons,
    runs_csv=snakemake.input.runs,
    figure1_csv=snakemake.input.figure1[0] if snakemake.input.figure1 else None,
    config=dict(snakemake.params.config),
    template_path=snakemake.input.template,
    out_csv=snakemake.output.csv,
    out_html=snakemake.output.html,
)
