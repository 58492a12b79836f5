"""Weight increments of one run: statistics of every changed tensor (rule increments) or
the chosen module's increments for Figure 1 (rule increment_module)."""
from pathlib import Path

from lwob.io import read_json
from lwob.jobs import run_job

model = read_json(snakemake.input.model)
out = snakemake.output
run_job(
    snakemake,
    "lwob.increments:write_run_increments",
    model_dir=Path(model["path"]),
    model_config=model.get("config_overrides"),
    tokenized_dir=Path(snakemake.input.data).parent,
    run_dir=Path(snakemake.input.record).parent,
    method_type=snakemake.params.method["type"],
    method_options=dict(snakemake.params.method["options"]),
    out_csv=out.get("stats"),
    out_selected=out.get("selected"),
    module=snakemake.params.get("module"),
    threads=max(1, int(snakemake.threads)),
)
