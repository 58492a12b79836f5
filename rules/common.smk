# Config loading, validation and the input/param functions every rule uses.
import inspect
import os
import re
import sys
from pathlib import Path

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))  # the package from this checkout

from lwob.plan import config as cfg
from lwob.plan import dependencies as deps
from lwob.plan import paths
from lwob.analysis.resources import spec as resource_study
from lwob.errors import ConfigError, DataError
from lwob.report.figures import FIGURES


try:
    # Snakemake's YAML loader keeps the last of two equal keys: re-read its files strictly.
    cfg.check_config_files([*workflow.overwrite_configfiles, *workflow.configfiles])
    cfg.validate(config, REPO / "config/schemas/config.schema.yaml", base_dir=".")
    resource_study.check_config(config)
except (ConfigError, DataError) as err:
    # One clear message, no traceback, before any job runs.
    sys.stderr.write(f"\nConfiguration error: {err}\n\n")
    sys.exit(1)


# Jobs import the package from this checkout, in any software environment (venv, conda).
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in [str(REPO / "src"), os.environ.get("PYTHONPATH")] if p))

# SLURM array jobs (profile `slurm-array-jobs`) only ever group jobs with identical rule,
# attempt and resources, never hold a job back, and their batch scripts survive SIGTERM so
# that training can save a checkpoint (docs/CLUSTER.md, "Array jobs", "Preemption").
if "snakemake_executor_plugin_slurm" in sys.modules:
    from lwob.plan.slurm import patch_plugin

    if not patch_plugin(sys.modules["snakemake_executor_plugin_slurm"]):
        sys.stderr.write("Warning: unknown SLURM executor plugin version: array jobs may mix resources"
                         " and jobs may be killed before saving a checkpoint on SIGTERM.\n")

# Everything derived from the config is computed once, here: input, param and resource
# functions run once per job (thousands in the paper DAG) and only look these up.
STUDIES = cfg.enabled_studies(config)
RUNS = cfg.runs(config, studies=STUDIES)
# Runs with a train job: not those of a method that never trains (vanilla: the base model).
TRAINED_RUNS = cfg.trained_runs(config, RUNS)
UNTRAINED_METHODS = frozenset(r.method for r in RUNS) - frozenset(r.method for r in TRAINED_RUNS)
# Studies shown beside the paper's numbers: those naming a paper table, when the config has them.
PAPER_STUDIES = [name for name, study in STUDIES.items() if study.get("paper_table") and config.get("reference")]
SELECTED = cfg.selected_triples(config, run_list=RUNS)  # (model, task, method) whose settings a grid chooses
FIGURE1 = cfg.figure1_runs(config, run_list=RUNS)  # method -> run whose increments Figure 1 shows (empty: no Figure 1)
# Eval sets of optional datasets whose files are absent are skipped here and flagged in
# the tables and the report (SKIPPED), never silently dropped.
EVAL_SETS = {t: cfg.available_eval_sets(config, t) for t in {r.task for r in RUNS}}
SKIPPED = cfg.skipped_eval_sets(config, run_list=RUNS)


def _grid_records_by_triple():
    """(model, task, method) -> the train.json of its grid runs (the input of `select`)."""
    out = {}
    for g in cfg.grid_runs(config, triples=SELECTED):
        out.setdefault((g.run.model, g.run.task, g.run.method), []).append(paths.grid_file(paths.GRID_RECORD, g))
    return out


GRID_RECORDS = _grid_records_by_triple()
SELECTED_SET = frozenset(SELECTED)
# The resource study (lwob.analysis.resources, rules/resources.smk), when the config has one.
RESOURCE_STUDY = resource_study.section(config)
RESOURCE_RUNS = resource_study.study_runs(config) if RESOURCE_STUDY else []


wildcard_constraints:
    model=r"[^/]+",
    task=r"[^/]+",
    method=r"[^/]+",
    dataset=r"[^/]+",
    eval_set=r"[^/]+",
    study="|".join(re.escape(name) for name in STUDIES) or "(?!)",  # only configured studies (not figure1)
    seed=r"\d+",
    cell=r"[^/]+",


# Downloads run on the submit host, where the network is; the small CPU steps after
# evaluation run there too instead of queueing as cluster jobs.
localrules:
    all,
    fetch_model,
    download,
    aggregate,
    table,
    figure,
    increment_table,
    figure1,
    select,
    selection_table,
    paper_table,
    claims,
    generations,


def per_job(func):
    """Mark an input, param or resource function (called once per job).

    Snakemake inspects such a function's signature each time it calls it (two or three
    times per job, tens of thousands of times in the paper DAG); a function that carries
    its signature (`__signature__`, the inspect protocol) skips most of that work.
    Nothing else changes.
    """
    func.__signature__ = inspect.signature(func)
    return func


# Studies with generation tasks: their per-example generations are a report page of their own.
GENERATION_RUNS = {name: cfg.generation_runs(config, study) for name, study in STUDIES.items()}
GENERATION_STUDIES = [name for name, runs in GENERATION_RUNS.items() if runs]


def final_outputs():
    return [
        *paths.study_files(paths.GENERATIONS, GENERATION_STUDIES, paths.GENERATIONS_EXTS),
        *paths.study_files(paths.TABLE, STUDIES, paths.TABLE_EXTS),
        *paths.study_files(paths.FIGURE, STUDIES, paths.FIGURE_EXTS),
        *paths.study_files(paths.PAPER_TABLE, PAPER_STUDIES, paths.TABLE_EXTS),
        paths.METRICS,
        paths.SUMMARY,
        paths.RUNS_TABLE,
        *(paths.of(paths.STATISTICS, name=name) for name in paths.STATISTICS_NAMES),
        paths.CLAIMS_HTML,
        *([paths.INCREMENT_TABLE] if cfg.increments_config(config) else []),
        *([paths.SELECTION_TABLE] if SELECTED else []),
        *(paths.study_files(paths.FIGURE, [paths.FIGURE1], paths.FIGURE_EXTS) if FIGURE1 else []),
    ]


def resource_outputs():
    """The resource study's table and figure (none without a `resource_study` section)."""
    if not RESOURCE_STUDY:
        return []
    return [*paths.study_files(paths.TABLE, [paths.RESOURCES], paths.TABLE_EXTS),
            *paths.study_files(paths.FIGURE, [paths.RESOURCES], paths.FIGURE_EXTS)]


def run_files(pattern):
    """`pattern` (lwob.plan.paths: EVAL_RECORD, PREDICTIONS) of every run; what training writes
    (TRAIN_RECORD, WEIGHTS) and what reads the weights (INCREMENTS) of every trained run."""
    trained_only = pattern in (paths.TRAIN_RECORD, paths.WEIGHTS, paths.INCREMENTS)
    return [paths.run_file(pattern, r) for r in (TRAINED_RUNS if trained_only else RUNS)]


def figure1_modules():
    """The selected-module files of the runs Figure 1 shows, in its methods' order."""
    return [paths.run_file(paths.INCREMENT_MODULE, r) for r in FIGURE1.values()]


def figure1_csv():
    """Figure 1's data, when the config asks for Figure 1 (the claims read it)."""
    return [paths.FIGURE1_CSV] if FIGURE1 else []


def chosen_cells():
    """The chosen cell of every (model, task, method) whose settings a grid chooses."""
    return [paths.of(paths.CHOICE, model=m, task=t, method=x) for m, t, x in SELECTED]


def resource_probes():
    return [paths.of(paths.PROBE, model=m, method=x)
            for m in resource_study.study_models(config) for x in resource_study.study_methods(config)]


def resource_records():
    """The training records of the runs the resource study's table shows."""
    return [paths.run_file(paths.TRAIN_RECORD, r) for r in RESOURCE_RUNS]


def resource_tokenized():
    """model/task -> the tokenized training parts of the resource study's runs (tokens/s)."""
    return {f"{r.model}/{r.task}": paths.of(paths.TOKENIZED, model=r.model, task=r.task) for r in RESOURCE_RUNS}


def resource_table_spec():
    return resource_study.table_spec(config) if RESOURCE_STUDY else {}


@per_job
def task_raw_manifests(wildcards):
    """Raw datasets of the train and validation parts."""
    task = config["tasks"][wildcards.task]
    return [paths.of(paths.RAW_MANIFEST, dataset=ds) for ds in cfg.training_datasets(task)]


@per_job
def eval_set_raw_manifest(wildcards):
    es = config["tasks"][wildcards.task]["eval_sets"][wildcards.eval_set]
    return paths.of(paths.RAW_MANIFEST, dataset=es["dataset"])


@per_job
def training_part_spec(wildcards):
    return cfg.training_part_spec(config, wildcards.task)


@per_job
def eval_set_part_spec(wildcards):
    return cfg.eval_set_part_spec(config, wildcards.task, wildcards.eval_set)


@per_job
def trained_run(wildcards):
    """A finished run's files and what rebuilds its model (evaluation and weight analysis);
    a method that never trains has only the base model and the tokenized data."""
    w = dict(wildcards.items())
    base = {"data": paths.of(paths.TOKENIZED, **w), "model": paths.of(paths.MODEL_RECORD, **w)}
    if wildcards.method in UNTRAINED_METHODS:
        return base
    return {"weights": paths.of(paths.WEIGHTS, **w), "record": paths.of(paths.TRAIN_RECORD, **w), **base}


@per_job
def eval_parts(wildcards):
    return [paths.of(paths.TOKENIZED_EVAL, model=wildcards.model, task=wildcards.task, eval_set=es)
            for es in EVAL_SETS[wildcards.task]]


@per_job
def selection_input(wildcards):
    """The chosen grid cell of the run's (model, task, method), when a grid chooses its settings."""
    if (wildcards.model, wildcards.task, wildcards.method) in SELECTED_SET:
        return paths.of(paths.CHOICE, model=wildcards.model, task=wildcards.task, method=wildcards.method)
    return []


@per_job
def grid_records(wildcards):
    return list(GRID_RECORDS.get((wildcards.model, wildcards.task, wildcards.method), []))


@per_job
def run_hyperparameters(wildcards):
    """The run's resolved training settings, less the evaluation-only ones."""
    return cfg.training_settings(config, wildcards.model, wildcards.task, wildcards.method)


@per_job
def run_evaluation_settings(wildcards):
    return cfg.evaluation_settings(config, wildcards.model, wildcards.task, wildcards.method)


@per_job
def cell_hyperparameters(wildcards):
    return cfg.cell_hyperparameters(config, wildcards.model, wildcards.task, wildcards.method, wildcards.cell)


@per_job
def dataset_spec(wildcards):
    return config["datasets"][wildcards.dataset]


@per_job
def local_data_files(wildcards):
    """A local dataset's files: editing or replacing one re-downloads it (and what follows)."""
    return deps.local_data_files(config["datasets"][wildcards.dataset])


@per_job
def model_identity(wildcards):
    """What changes a model's weights, tokenizer or config; not its resources or display name."""
    return deps.model_identity(config, wildcards.model)


# What tables, figures and claims show of the config (display names, aliases, method types,
# task columns): a param of theirs, so editing a display name redraws them and nothing else.
PRESENTATION = deps.presentation(config)


@per_job
def run_method(wildcards):
    return cfg.method_spec(config, wildcards.method)


def job_resource(name, per_run=False, evaluation=False):
    """One resource of a job of a run, from the model's entry in the config; with per_run
    (training), times the run's processes (training.processes); with evaluation, the GPUs
    times the run's eval_devices.

    Memory and runtime grow with the attempt, so a job retried after running out of
    memory or time asks for more.
    """

    @per_job
    def get(wildcards, attempt):
        if per_run:
            res = cfg.train_resources(config, wildcards.model, wildcards.task, wildcards.method)
        elif evaluation:
            res = cfg.evaluation_resources(config, wildcards.model, wildcards.task, wildcards.method)
        else:
            res = cfg.run_resources(config, wildcards.model)
        scaled = {"mem_mb": res["mem_mb"] * attempt, "runtime": res["runtime_min"] * attempt}
        return scaled.get(name, res.get(name) or (0 if name == "gpus" else ""))

    return get


def slurm_placement(partition_kind):
    return cfg.slurm_resources(config, partition_kind)


def multi_node_resource(name):
    """One of a training job's SLURM settings for a run over several nodes
    (cfg.multi_node_resources); None (no flag at all) for a run on one node."""

    @per_job
    def get(wildcards):
        return cfg.multi_node_resources(config, wildcards.model, wildcards.task, wildcards.method).get(name)

    return get


def gpu_job_resources(per_run=False, evaluation=False):
    """The resources of a job on the GPU partition (training, evaluation, probes): the model's
    memory, runtime, CPUs and GPUs (per_run: times the run's processes, over its nodes;
    evaluation: GPUs times eval_devices), and its placement."""
    names = {"mem_mb": "mem_mb", "runtime": "runtime", "cpus_per_task": "cpus", "gpu": "gpus", "gpu_model": "gpu_model"}
    nodes = {name: multi_node_resource(name) for name in cfg.MULTI_NODE_RESOURCES} if per_run else {}
    return ({key: job_resource(name, per_run=per_run, evaluation=evaluation) for key, name in names.items()}
            | nodes | slurm_placement("gpu"))


def cpu_job_resources():
    """The resources of a per-run job on the CPU partition (weight analysis): the model's memory,
    runtime and CPUs, no GPU."""
    names = {"mem_mb": "mem_mb", "runtime": "runtime", "cpus_per_task": "cpus"}
    return {key: job_resource(name) for key, name in names.items()} | slurm_placement("cpu")


@per_job
def threads_of(wildcards):
    return cfg.run_resources(config, wildcards.model)["cpus"]


@per_job
def train_threads(wildcards):
    """A training job's CPUs, shared by its processes (training.processes)."""
    return cfg.train_resources(config, wildcards.model, wildcards.task, wildcards.method)["cpus"]


@per_job
def reference_input(wildcards):
    """The paper's numbers, when the config names them (an input: editing them reruns tables)."""
    return [config["reference"]] if config.get("reference") else []


@per_job
def study_spec(wildcards):
    return STUDIES[wildcards.study]


@per_job
def study_skipped_sets(wildcards):
    """The study's eval sets skipped for an absent optional dataset (flagged in its table)."""
    return {t: SKIPPED[t] for t in STUDIES[wildcards.study]["tasks"] if t in SKIPPED}


@per_job
def figure_runs_input(wildcards):
    """The runs table (paths.RUNS_TABLE) for a figure kind that reads it (budget: trainable parameters)."""
    return [paths.RUNS_TABLE] if FIGURES.get(STUDIES[wildcards.study].get("figure", "robustness")).reads_runs else []


@per_job
def increment_selector(wildcards):
    return cfg.increment_selector(config, wildcards.method)


@per_job
def probe_spec(wildcards):
    return resource_study.probe_spec(config, wildcards.model, wildcards.method)


@per_job
def grid_cells(wildcards):
    """cell id -> the grid cell's settings, of the (model, task, method) being selected."""
    return {cfg.cell_id(c): c for c in cfg.selection_grid(config, wildcards.model, wildcards.task, wildcards.method)}


@per_job
def study_generation_predictions(wildcards):
    """The predictions of the runs whose generations the study shows (first seed)."""
    return [paths.run_file(paths.PREDICTIONS, r) for r in GENERATION_RUNS[wildcards.study]]


@per_job
def study_generation_runs(wildcards):
    return [[r.model, r.task, r.method, r.seed] for r in GENERATION_RUNS[wildcards.study]]
