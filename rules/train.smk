# Training: one job per {model}/{task}/{method}/seed{seed}. Its params carry the fully
# resolved hyperparameters and method options, so a config change reruns only the runs
# it touches; `code` reruns them when the training code changes. A run whose settings are
# chosen on a grid (rules/selection.smk) also reads the chosen cell.


rule train:
    input:
        data=paths.TOKENIZED,
        model=paths.MODEL_RECORD,
        selection=selection_input,
    output:
        weights=paths.WEIGHTS,
        record=paths.TRAIN_RECORD,
    log:
        "logs/train/{model}/{task}/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{model}/{task}/{method}/seed{seed}.tsv"
    params:
        method=run_method,
        hyperparameters=run_hyperparameters,
        code=deps.code_of("train"),
    threads: train_threads
    resources:
        **gpu_job_resources(per_run=True),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/train.py"
