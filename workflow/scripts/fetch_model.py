"""Locate or download a model's weights once; record where they are and their hashes."""
from lwob.jobs import job_log

with job_log(snakemake, offline=False):
    from lwob.io import write_json
    from lwob.models import resolve_model

    write_json(snakemake.output[0], {"model": snakemake.wildcards.model, **resolve_model(snakemake.params.spec)})
