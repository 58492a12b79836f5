# Resource study (lwob.analysis.resources): per model and method, parameters, peak memory and
# throughput at a fixed setting (the paper's Table 7: batch 8, length 512; one probe job
# each, asking for the model's resources like training) and in the finished training runs;
# one table and one figure. Only with a `resource_study` section in the config. A method that
# cannot apply to a model (BitFit on a model without bias terms) is planned like the others:
# its probe records "not applicable" with the reason, and the table shows it.
# The config section is checked with the rest of the config, its runs and files listed, in
# rules/common.smk (RESOURCE_STUDY, resource_outputs).


# Reading JSON records and drawing: on the submit host, like the other tables.
localrules:
    resource_table,


rule resource_probe:
    input:
        model=paths.MODEL_RECORD,
    output:
        probe=paths.PROBE,
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
        probes=resource_probes(),
        records=resource_records(),
        tokenized=sorted(set(resource_tokenized().values())),
        template=REPO / "reports/templates/resources_table.tex.j2",
        # The paper's numbers (Table 7's memory, shown beside the probes): editing them redraws
        # the table and nothing else. The table job reads the file from params.study["reference"].
        reference=reference_input,
    output:
        tex=report(paths.of(paths.TABLE, study=paths.RESOURCES, ext="tex"), caption="../reports/captions/resources_table.rst", category="Resources"),
        csv=report(paths.of(paths.TABLE, study=paths.RESOURCES, ext="csv"), caption="../reports/captions/resources_csv.rst", category="Resources"),
        training=report(paths.RESOURCES_TRAINING, caption="../reports/captions/resources_training.rst", category="Resources"),
        pdf=paths.of(paths.FIGURE, study=paths.RESOURCES, ext="pdf"),
        png=report(paths.of(paths.FIGURE, study=paths.RESOURCES, ext="png"), caption="../reports/captions/resources_figure.rst", category="Resources"),
    log:
        "logs/resources/table.log",
    params:
        study=resource_table_spec(),
        tokenized=resource_tokenized(),
        shown=PRESENTATION,
        code=deps.code_of("resource_table"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/resource_table.py"
