"""Tokenise one eval set of a task for one model's tokenizer."""
from pathlib import Path

from lwob.io import read_json
from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.data.tokenize:prepare_eval_set",
    task_name=snakemake.wildcards.task,
    task=dict(snakemake.params.task),
    eval_set=snakemake.wildcards.eval_set,
    raw_dirs={Path(snakemake.input.raw).parent.name: Path(snakemake.input.raw).parent},
    tokenizer_path=Path(read_json(snakemake.input.model)["path"]),
    model_name=snakemake.wildcards.model,
    out_json=snakemake.output[0],
)
