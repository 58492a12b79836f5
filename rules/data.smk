# Data stage: materialise each dataset and model once; tokenise once per model x task
# (training parts) and once per model x task x eval set.


rule download:
    input:
        local_data_files,
    output:
        "data/raw/{dataset}/manifest.json",
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
        "resources/models/{model}.json",
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
        model="resources/models/{model}.json",
    output:
        "data/tokenized/{model}/{task}/meta.json",
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
        model="resources/models/{model}.json",
    output:
        "data/tokenized/{model}/{task}/eval/{eval_set}.json",
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
