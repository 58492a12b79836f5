"""Materialise one dataset: normalised Parquet per split plus manifest.json."""
from pathlib import Path

from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.data.sources:materialize",
    offline=False,
    name=snakemake.wildcards.dataset,
    spec=dict(snakemake.params.spec),
    out_dir=Path(snakemake.output[0]).parent,
)
