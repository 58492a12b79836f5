"""Choose a (model, task, method)'s grid cell on the validation set."""
from collections import defaultdict
from pathlib import Path

from lwob.plan.jobs import run_job

w = snakemake.wildcards
records = defaultdict(list)
for path in snakemake.input.records:  # .../{cell}/seed{seed}/train.json
    records[Path(path).parent.parent.name].append(path)
run_job(
    snakemake,
    "lwob.analysis.selection:write_choice",
    cells=dict(snakemake.params.cells),
    records=dict(records),
    run_id={"model": w.model, "task": w.task, "method": w.method},
    out_json=snakemake.output.choice,
)
