"""Choose a (model, task, method)'s grid cell on the validation set."""
from lwob.plan import paths
from lwob.plan.jobs import run_job

w = snakemake.wildcards
cells = dict(snakemake.params.cells)
records = {cell: [] for cell in cells}
for path in snakemake.input.records:  # paths.GRID_RECORD of one of the cells
    records[paths.grid_cell_of(path, w.model, w.task, w.method, cells)].append(path)
run_job(
    snakemake,
    "lwob.analysis.selection:write_choice",
    cells=cells,
    records={cell: found for cell, found in records.items() if found},
    run_id={"model": w.model, "task": w.task, "method": w.method},
    out_json=snakemake.output.choice,
)
