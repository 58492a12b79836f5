# Hyperparameter selection on the validation set (config `selection`, lwob.analysis.selection):
# each grid cell of a selected (model, task, method) trains with the selection seeds,
# `select` keeps the cell with the best mean validation score, and the study's runs of that
# triple train with it (rules/train.smk reads chosen.json).


rule train_cell:
    input:
        data=paths.TOKENIZED,
        model=paths.MODEL_RECORD,
    output:
        # Only the validation scores in the record are used: the weights are not kept.
        weights=temp(paths.GRID_WEIGHTS),
        record=paths.GRID_RECORD,
    log:
        "logs/train_cell/{model}/{task}/{method}/{cell}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train_cell/{model}/{task}/{method}/{cell}/seed{seed}.tsv"
    params:
        method=run_method,
        hyperparameters=cell_hyperparameters,
        code=deps.code_of("train"),
    threads: train_threads
    resources:
        **gpu_job_resources(per_run=True),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/train.py"


rule select:
    input:
        records=grid_records,
    output:
        choice=paths.CHOICE,
    log:
        "logs/select/{model}/{task}/{method}.log",
    params:
        cells=grid_cells,
        code=deps.code_of("select"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/select.py"


rule selection_table:
    input:
        choices=chosen_cells(),
    output:
        csv=report(paths.SELECTION_TABLE, caption="../reports/captions/selection.rst", category="Protocol"),
    log:
        "logs/selection_table.log",
    params:
        code=deps.code_of("selection_table"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/selection_table.py"
