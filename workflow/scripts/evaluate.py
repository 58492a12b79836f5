"""Evaluate one trained run on every eval set of its task."""
from pathlib import Path

from lwob.jobs import job_log, run_threads

with job_log(snakemake):
    from lwob.evaluation import evaluate_run
    from lwob.io import read_json

    model = read_json(snakemake.input.model)
    evaluate_run(
        model_dir=Path(model["path"]),
        tokenized_dir=Path(snakemake.input.data).parent,
        run_dir=Path(snakemake.input.record).parent,
        method_type=snakemake.params.method["type"],
        method_options=snakemake.params.method["options"],
        eval_sets=None,
        out_json=snakemake.output.metrics,
        out_predictions=snakemake.output.predictions,
        threads=run_threads(snakemake),
    )
