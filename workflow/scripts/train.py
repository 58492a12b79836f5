"""Train one run: {model}/{task}/{method}/seed{seed}, or one grid cell's run (rule train_cell)."""
from pathlib import Path

from lwob.plan.config import evaluation_settings
from lwob.io import read_json
from lwob.plan.jobs import run_job

w = snakemake.wildcards
model = read_json(snakemake.input.model)
# Not params: the evaluation-only settings (eval_batch_size, for the per-epoch validation
# pass) must not retrain a run when they change.
hyperparameters = {**snakemake.params.hyperparameters, **evaluation_settings(snakemake.config, w.model, w.task, w.method)}
selection = {}
if snakemake.input.get("selection"):  # the run's settings were chosen on a grid (validation)
    choice = read_json(snakemake.input.selection)
    hyperparameters.update(choice["hyperparameters"])
    selection = {"selection": {"cell": choice["chosen"], "values": choice["hyperparameters"],
                               "val_metric": choice.get("val_metric")}}
run_job(
    snakemake,
    "lwob.run.launch:train",
    model_dir=Path(model["path"]),
    tokenized_dir=Path(snakemake.input.data).parent,
    method_type=snakemake.params.method["type"],
    method_options=dict(snakemake.params.method["options"]),
    hyperparameters=hyperparameters,
    seed=int(w.seed),
    out_dir=Path(snakemake.output.record).parent,
    run_id={"model": w.model, "task": w.task, "method": w.method, "seed": int(w.seed), **({"cell": w.cell} if "cell" in w.keys() else {})},
    threads=max(1, int(snakemake.threads)),
    provenance_extra={"model": model, **selection},
    model_config=model.get("config_overrides"),
    # Not a param: how often to checkpoint never changes the result, so it must not rerun jobs.
    checkpoint_minutes=(snakemake.config.get("execution") or {}).get("checkpoint_minutes", 30),
)
