"""Tokenise a task's train, validation and eval parts once for one model's tokenizer."""
from pathlib import Path

from lwob.io import read_json
from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.data.tokenize:prepare_task",
    task_name=snakemake.wildcards.task,
    task=dict(snakemake.params.task),
    raw_dirs={Path(m).parent.name: Path(m).parent for m in snakemake.input.raw},
    tokenizer_path=Path(read_json(snakemake.input.model)["path"]),
    model_name=snakemake.wildcards.model,
    out_dir=Path(snakemake.output[0]).parent,
)
