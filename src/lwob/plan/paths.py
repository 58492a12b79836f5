"""Where every file of the workflow lives: the one place that spells the paths.

Each path is a format string over the wildcard names of the rules (`{model}`, `{task}`,
`{method}`, `{seed}`, `{cell}`, `{study}`, `{dataset}`, `{eval_set}`, `{ext}`, ...), so the
same string is a rule's output pattern and, filled in (`of`, `run_file`), the file of one job.
The rules (rules/*.smk), their input functions (rules/common.smk) and the package read them
from here; a job's files reach its script through Snakemake's `input`/`output`.

Planning code: imports nothing of the package but the run's wildcard set.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- data and models

#: A dataset, normalised: one Parquet file per split and this manifest (rules/data.smk).
RAW_MANIFEST = "data/raw/{dataset}/manifest.json"
#: A model's record: what was fetched, its module names (rule fetch_model).
MODEL_RECORD = "resources/models/{model}.json"
#: The training parts of a task, tokenised once per model (rule tokenize).
TOKENIZED = "data/tokenized/{model}/{task}/meta.json"
#: One eval set of a task, tokenised once per model (rule tokenize_eval).
TOKENIZED_EVAL = "data/tokenized/{model}/{task}/eval/{eval_set}.json"

# --------------------------------------------------------------------------- runs

RESULTS = "results"
#: One training run's folder: its weights and its record.
RUN_DIR = "results/runs/{model}/{task}/{method}/seed{seed}"
WEIGHTS = RUN_DIR + "/weights.safetensors"
TRAIN_RECORD = RUN_DIR + "/train.json"
#: One run's evaluation record and its per-example predictions.
EVAL_RECORD = "results/eval/{model}/{task}/{method}/seed{seed}.json"
PREDICTIONS = "results/eval/{model}/{task}/{method}/seed{seed}.predictions.parquet"

# --------------------------------------------------------------------------- selection

#: One training run of a grid cell (its weights are temporary; the record keeps the scores).
GRID_RUN_DIR = "results/selection/{model}/{task}/{method}/{cell}/seed{seed}"
GRID_WEIGHTS = GRID_RUN_DIR + "/weights.safetensors"
GRID_RECORD = GRID_RUN_DIR + "/train.json"
#: The chosen cell of a (model, task, method).
CHOICE = "results/selection/{model}/{task}/{method}/chosen.json"
SELECTION_TABLE = "results/selection.csv"

# --------------------------------------------------------------------------- analysis

METRICS = "results/metrics.csv"
SUMMARY = "results/summary.csv"
RUNS_TABLE = "results/runs.csv"
#: Paired comparisons and stability across seeds: {name} is comparisons, stability, stability_correlation.
STATISTICS = "results/statistics/{name}.csv"
STATISTICS_NAMES = ("comparisons", "stability", "stability_correlation")
CLAIMS_CSV = "results/claims.csv"
CLAIMS_HTML = "results/claims.html"
#: Weight increments: one run's statistics, the module Figure 1 shows, the table of all runs.
INCREMENTS = "results/increments/{model}/{task}/{method}/seed{seed}.csv"
INCREMENT_MODULE = "results/increments/figure1/{model}/{task}/{method}/seed{seed}.safetensors"
INCREMENT_TABLE = "results/increments.csv"
FIGURE1_CSV = "results/increments/figure1.csv"
#: Resource study: one probe per model and method, then its table and figure.
PROBE = "results/resources/probe/{model}/{method}.json"

# --------------------------------------------------------------------------- tables and figures

#: A study's table ({ext}: tex, csv) and figure ({ext}: pdf, png).
TABLE = "results/tables/{study}.{ext}"
PAPER_TABLE = "results/tables/paper/{study}.{ext}"
FIGURE = "results/figures/{study}.{ext}"
#: per-example generations of a study's generation tasks (lwob.report.generations)
GENERATIONS = "results/generations/{study}.{ext}"
GENERATIONS_EXTS = ("csv", "html")
TABLE_EXTS = ("tex", "csv")
FIGURE_EXTS = ("pdf", "png")
#: The names the fixed tables and figures take in TABLE and FIGURE.
FIGURE1 = "figure1"
RESOURCES = "resources"
#: The resource study's CSV of the finished training runs' costs.
RESOURCES_TRAINING = "results/tables/resources_training.csv"


def of(pattern: str, **wildcards) -> str:
    """`pattern` with its wildcards filled in, e.g. of(TABLE, study="table3", ext="tex")."""
    return pattern.format(**wildcards)


def run_file(pattern: str, run) -> str:
    """The file `pattern` (RUN_DIR, WEIGHTS, TRAIN_RECORD, EVAL_RECORD, PREDICTIONS, INCREMENTS,
    INCREMENT_MODULE) of one run (lwob.plan.config.Run)."""
    return pattern.format(model=run.model, task=run.task, method=run.method, seed=run.seed)


def grid_file(pattern: str, grid_run) -> str:
    """The file `pattern` (GRID_RUN_DIR, GRID_WEIGHTS, GRID_RECORD) of one grid run
    (lwob.plan.config.GridRun)."""
    r = grid_run.run
    return pattern.format(model=r.model, task=r.task, method=r.method, cell=grid_run.cell, seed=r.seed)


def study_files(pattern: str, studies, exts) -> list[str]:
    """`pattern` (TABLE, PAPER_TABLE, FIGURE) for each study and extension, study by study."""
    return [pattern.format(study=s, ext=e) for s in studies for e in exts]


def grid_cell_of(record: str, model: str, task: str, method: str, cells) -> str:
    """Which of `cells` (cell ids) the grid record file `record` belongs to (the `select` job
    groups its inputs by cell); ValueError when none."""
    for cell in cells:
        folder = GRID_RUN_DIR.format(model=model, task=task, method=method, cell=cell, seed="")
        if str(record).startswith(folder.removesuffix("seed")):
            return cell
    raise ValueError(f"{record} is not the record of a grid cell of {model}/{task}/{method} ({', '.join(cells)})")
