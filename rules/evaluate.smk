# Evaluation on every eval set of the task (original and adversarial), with per-example
# predictions kept for paired statistics.


rule evaluate:
    input:
        unpack(trained_run),
        eval_parts=eval_parts,
    output:
        metrics=paths.EVAL_RECORD,
        predictions=paths.PREDICTIONS,
    log:
        "logs/evaluate/{model}/{task}/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/evaluate/{model}/{task}/{method}/seed{seed}.tsv"
    params:
        method=run_method,
        evaluation=run_evaluation_settings,
        code=deps.code_of("evaluate"),
    threads: threads_of
    resources:
        **gpu_job_resources(evaluation=True),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/evaluate.py"
