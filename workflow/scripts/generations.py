"""A study's per-example generations (prompt, generation, reference, score) as CSV and HTML."""
from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.report.generations:write_generations",
    predictions={tuple(run): path for run, path in zip(snakemake.params.runs, snakemake.input.predictions)},
    study_name=snakemake.wildcards.study,
    title=snakemake.params.study.get("title"),
    out_csv=snakemake.output.csv,
    out_html=snakemake.output.html,
)
