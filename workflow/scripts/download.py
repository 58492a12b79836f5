"""Materialise one dataset: normalised Parquet per split plus manifest.json."""
from pathlib import Path

from lwob.jobs import job_log

with job_log(snakemake, offline=False):
    from lwob.data.sources import materialize

    materialize(snakemake.wildcards.dataset, snakemake.params.spec, Path(snakemake.output[0]).parent)
