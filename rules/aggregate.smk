# Aggregation over runs and seeds (lwob.analysis.aggregate) and the statistics over them
# (lwob.analysis.stats): the tidy tables every report reads.


rule aggregate:
    input:
        evals=run_files(paths.EVAL_RECORD),
        records=run_files(paths.TRAIN_RECORD),
    output:
        metrics=report(paths.METRICS, caption="../reports/captions/metrics.rst", category="Data"),
        summary=report(paths.SUMMARY, caption="../reports/captions/summary.rst", category="Data"),
        runs=report(paths.RUNS_TABLE, caption="../reports/captions/runs.rst", category="Provenance"),
    log:
        "logs/aggregate.log",
    params:
        code=deps.code_of("aggregate"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/aggregate.py"


rule statistics:
    input:
        metrics=paths.METRICS,
        predictions=run_files(paths.PREDICTIONS),
    output:
        comparisons=report(paths.of(paths.STATISTICS, name="comparisons"), caption="../reports/captions/comparisons.rst", category="Statistics"),
        stability=report(paths.of(paths.STATISTICS, name="stability"), caption="../reports/captions/stability.rst", category="Statistics"),
        correlation=report(paths.of(paths.STATISTICS, name="stability_correlation"), caption="../reports/captions/stability.rst", category="Statistics"),
    log:
        "logs/statistics.log",
    params:
        task_metrics=cfg.task_metrics(config),  # the metric each task is compared on
        code=deps.code_of("statistics"),
    resources:
        **slurm_placement("cpu"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/statistics.py"
