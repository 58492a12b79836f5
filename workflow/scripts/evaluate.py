"""Evaluate one trained run on every eval set of its task."""
from pathlib import Path

from lwob.io import read_json
from lwob.jobs import run_job

model = read_json(snakemake.input.model)
run_job(
    snakemake,
    "lwob.evaluation:evaluate_run",
    model_dir=Path(model["path"]),
    model_config=model.get("config_overrides"),
    tokenized_dir=Path(snakemake.input.data).parent,
    run_dir=Path(snakemake.input.record).parent,
    method_type=snakemake.params.method["type"],
    method_options=dict(snakemake.params.method["options"]),
    eval_parts=list(snakemake.input.eval_parts),
    out_json=snakemake.output.metrics,
    out_predictions=snakemake.output.predictions,
    threads=max(1, int(snakemake.threads)),
)
