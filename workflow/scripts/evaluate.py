"""Evaluate one trained run on every eval set of its task."""
from pathlib import Path

from lwob.io import read_json
from lwob.jobs import run_job

run_job(
    snakemake,
    "lwob.evaluation:evaluate_run",
    model_dir=Path(read_json(snakemake.input.model)["path"]),
    tokenized_dir=Path(snakemake.input.data).parent,
    run_dir=Path(snakemake.input.record).parent,
    method_type=snakemake.params.method["type"],
    method_options=dict(snakemake.params.method["options"]),
    eval_sets=None,
    out_json=snakemake.output.metrics,
    out_predictions=snakemake.output.predictions,
    threads=max(1, int(snakemake.threads)),
)
