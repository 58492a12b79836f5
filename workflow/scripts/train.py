"""Train one run: {model}/{task}/{method}/seed{seed}."""
from pathlib import Path

from lwob.jobs import job_log, run_threads

with job_log(snakemake):
    from lwob.io import read_json
    from lwob.training import train_run

    w = snakemake.wildcards
    model = read_json(snakemake.input.model)
    train_run(
        model_dir=Path(model["path"]),
        tokenized_dir=Path(snakemake.input.data).parent,
        method_type=snakemake.params.method["type"],
        method_options=snakemake.params.method["options"],
        hyperparameters=snakemake.params.hyperparameters,
        seed=int(w.seed),
        out_dir=Path(snakemake.output.record).parent,
        run_id={"model": w.model, "task": w.task, "method": w.method, "seed": int(w.seed)},
        threads=run_threads(snakemake),
        provenance_extra={"model": model},
    )
