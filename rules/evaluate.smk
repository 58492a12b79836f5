# Evaluation on every eval set of the task (original and adversarial), with per-example
# predictions kept for paired statistics.


rule evaluate:
    input:
        weights="results/runs/{model}/{task}/{method}/seed{seed}/weights.safetensors",
        record="results/runs/{model}/{task}/{method}/seed{seed}/train.json",
        data="data/tokenized/{model}/{task}/meta.json",
        eval_parts=eval_parts,
        model="resources/models/{model}.json",
    output:
        metrics="results/eval/{model}/{task}/{method}/seed{seed}.json",
        predictions="results/eval/{model}/{task}/{method}/seed{seed}.predictions.parquet",
    log:
        "logs/evaluate/{model}/{task}/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/evaluate/{model}/{task}/{method}/seed{seed}.tsv"
    params:
        method=run_method,
        code=cfg.code_version("evaluation", "training", "methods", "models", "tasks", "qa", "registry"),
    threads: threads_of
    resources:
        mem_mb=job_resource("mem_mb"),
        runtime=job_resource("runtime"),
        cpus_per_task=job_resource("cpus"),
        gpu=job_resource("gpus"),
        gpu_model=job_resource("gpu_model"),
        **slurm_placement("gpu"),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/evaluate.py"
