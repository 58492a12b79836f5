# Data stage: materialise each dataset and model once; tokenise once per model x task
# (training parts) and once per model x task x eval set.


rule download:
    input:
        local_data_files,
    output:
        paths.RAW_MANIFEST,
    log:
        "logs/download/{dataset}.log",
    params:
        spec=dataset_spec,
        code=deps.code_of("download"),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/download.py"


rule fetch_model:
    output:
        paths.MODEL_RECORD,
    log:
        "logs/fetch_model/{model}.log",
    params:
        spec=model_identity,
        code=deps.code_of("fetch_model"),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/fetch_model.py"


rule tokenize:
    input:
        raw=task_raw_manifests,
        model=paths.MODEL_RECORD,
    output:
        paths.TOKENIZED,
    log:
        "logs/tokenize/{model}/{task}.log",
    params:
        task=training_part_spec,
        code=deps.code_of("tokenize"),
    resources:
        mem_mb=8000,
        runtime=60,
        **slurm_placement("cpu"),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/tokenize.py"


rule tokenize_eval:
    input:
        raw=eval_set_raw_manifest,
        model=paths.MODEL_RECORD,
    output:
        paths.TOKENIZED_EVAL,
    log:
        "logs/tokenize/{model}/{task}/eval/{eval_set}.log",
    params:
        task=eval_set_part_spec,
        code=deps.code_of("tokenize_eval"),
    resources:
        mem_mb=8000,
        runtime=60,
        **slurm_placement("cpu"),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/tokenize_eval.py"
