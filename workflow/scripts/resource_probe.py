"""Resource probe of one (model, method): memory and throughput at the study's fixed setting."""
from lwob.io import read_json
from lwob.plan.jobs import run_job

w = snakemake.wildcards
run_job(
    snakemake,
    "lwob.analysis.resources.probe:probe_job",
    model_record=read_json(snakemake.input.model),
    method_type=snakemake.params.method["type"],
    method_options=dict(snakemake.params.method["options"]),
    spec=dict(snakemake.params.spec),
    out_json=snakemake.output.probe,
    run_id={"model": w.model, "method": w.method},
    threads=max(1, int(snakemake.threads)),
)
