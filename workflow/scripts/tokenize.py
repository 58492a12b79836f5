"""Tokenise a task's train, validation and eval parts once for one model's tokenizer."""
from pathlib import Path

from lwob.jobs import job_log

with job_log(snakemake):
    from lwob.data.tokenize import prepare_task
    from lwob.io import read_json

    model = read_json(snakemake.input.model)
    raw_dirs = {Path(m).parent.name: Path(m).parent for m in snakemake.input.raw}
    prepare_task(
        snakemake.wildcards.task,
        snakemake.params.task,
        raw_dirs,
        Path(model["path"]),
        snakemake.wildcards.model,
        Path(snakemake.output[0]).parent,
    )
