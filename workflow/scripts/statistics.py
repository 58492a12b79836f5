"""FFT against every other method (paired t-test over seeds, paired bootstrap over examples,
Holm/BH corrections, robustness gaps) and stability across seeds."""
from lwob.plan.jobs import run_job

run_job(
    snakemake,
    "lwob.analysis.stats:write_statistics",
    metrics_csv=snakemake.input.metrics,
    predictions=list(snakemake.input.predictions),
    out_comparisons_csv=snakemake.output.comparisons,
    out_stability_csv=snakemake.output.stability,
    out_correlation_csv=snakemake.output.correlation,
    task_metrics=dict(snakemake.params.task_metrics),
)
