"""Evaluate one trained run on every eval set of its task."""
from lwob.run.finished_run import trained_run_args
from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.run.evaluation:evaluate_run",
    **trained_run_args(snakemake),
    eval_parts=list(snakemake.input.eval_parts),
    out_json=snakemake.output.metrics,
    out_predictions=snakemake.output.predictions,
    threads=max(1, int(snakemake.threads)),
    batch_size=int(snakemake.params.evaluation["eval_batch_size"]),
    settings=dict(snakemake.params.evaluation),
    run_id={k: snakemake.wildcards[k] for k in ("model", "task", "method", "seed")},
)
