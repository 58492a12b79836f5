# Resource study (lwob.analysis.resource_study): per model and method, parameters, peak memory and
# throughput at a fixed setting (the paper's Table 7: batch 8, length 512; one probe job
# each, asking for the model's resources like training) and in the finished training runs;
# one table and one figure. Only with a `resource_study` section in the config.
import functools

from lwob.analysis import resource_study as rs

RESOURCE_STUDY = rs.section(config)  # checked with the rest of the config (rules/common.smk)
RESOURCE_RUNS = rs.study_runs(config) if RESOURCE_STUDY else []

# Reading JSON records and drawing: on the submit host, like the other tables.
localrules:
    resource_table,


# The study's final files for `rule all` (none without a `resource_study` section); a partial,
# not a function defined here, as a rule file holds rules only (snakemake --lint).
resource_outputs = functools.partial(rs.final_outputs, config)


rule resource_probe:
    input:
        model="resources/models/{model}.json",
    output:
        probe="results/resources/probe/{model}/{method}.json",
    log:
        "logs/resources/probe/{model}/{method}.log",
    benchmark:
        "logs/benchmarks/resources/probe/{model}/{method}.tsv"
    params:
        method=run_method,
        spec=probe_spec,
        code=deps.code_of("resource_probe"),
    threads: threads_of
    resources:
        **gpu_job_resources(),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/resource_probe.py"


rule resource_table:
    input:
        probes=rs.probe_paths(config) if RESOURCE_STUDY else [],
        records=[f"results/runs/{r.path}/train.json" for r in RESOURCE_RUNS],
        tokenized=sorted({f"data/tokenized/{r.model}/{r.task}/meta.json" for r in RESOURCE_RUNS}),
        template=REPO / "reports/templates/resources_table.tex.j2",
    output:
        tex=report("results/tables/resources.tex", caption="../reports/captions/resources_table.rst", category="Resources"),
        csv=report("results/tables/resources.csv", caption="../reports/captions/resources_csv.rst", category="Resources"),
        training=report("results/tables/resources_training.csv", caption="../reports/captions/resources_training.rst", category="Resources"),
        pdf="results/figures/resources.pdf",
        png=report("results/figures/resources.png", caption="../reports/captions/resources_figure.rst", category="Resources"),
    log:
        "logs/resources/table.log",
    params:
        study=rs.table_spec(config) if RESOURCE_STUDY else {},
        tokenized={f"{r.model}/{r.task}": f"data/tokenized/{r.model}/{r.task}/meta.json" for r in RESOURCE_RUNS},
        shown=PRESENTATION,
        code=deps.code_of("resource_table"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/resource_table.py"
