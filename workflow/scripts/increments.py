"""Weight increments of one run: statistics of every changed tensor (rule increments) or
the chosen module's increments for Figure 1 (rule increment_module)."""
from lwob.run.finished_run import trained_run_args
from lwob.plan.jobs import run_job

out = snakemake.output
run_job(
    snakemake,
    "lwob.analysis.increments:write_run_increments",
    **trained_run_args(snakemake),
    out_csv=out.get("stats"),
    out_selected=out.get("selected"),
    module=snakemake.params.get("module"),
    threads=max(1, int(snakemake.threads)),
)
