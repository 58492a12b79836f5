"""Locate or download a model's weights once; record where they are and their hashes."""
from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.models:write_model_record",
    offline=False,
    name=snakemake.wildcards.model,
    spec=dict(snakemake.params.spec),
    out_json=snakemake.output[0],
)
