# Weight increments (lwob.analysis.increments): statistics of what every run changed, and the
# paper's Figure 1 for the runs and module chosen in the config's `increments` section.
# Both read saved weights and never retrain; choosing another module reruns only
# increment_module and figure1.


rule increments:
    input:
        unpack(trained_run),
    output:
        stats=paths.INCREMENTS,
    log:
        "logs/increments/{model}/{task}/{method}/seed{seed}.log",
    params:
        method=run_method,
        code=deps.code_of("increments"),
    threads: threads_of
    resources:
        **cpu_job_resources(),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/increments.py"


rule increment_module:
    input:
        unpack(trained_run),
    output:
        selected=paths.INCREMENT_MODULE,
    log:
        "logs/increments/figure1/{model}/{task}/{method}/seed{seed}.log",
    params:
        method=run_method,
        module=increment_selector,
        code=deps.code_of("increments"),
    threads: threads_of
    resources:
        **cpu_job_resources(),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/increments.py"


rule increment_table:
    input:
        stats=run_files(paths.INCREMENTS),
    output:
        csv=report(paths.INCREMENT_TABLE, caption="../reports/captions/increments.rst", category="Weight increments"),
    log:
        "logs/increment_table.log",
    params:
        code=deps.code_of("increment_table"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/increment_table.py"


rule figure1:
    input:
        selected=figure1_modules(),
    output:
        pdf=paths.of(paths.FIGURE, study=paths.FIGURE1, ext="pdf"),
        png=report(paths.of(paths.FIGURE, study=paths.FIGURE1, ext="png"), caption="../reports/captions/figure1.rst", category="Figures", subcategory="figure1"),
        csv=paths.FIGURE1_CSV,
    log:
        "logs/figure/figure1.log",
    params:
        methods=list(FIGURE1),
        increments=cfg.increments_config(config),
        shown=PRESENTATION,
        code=deps.code_of("figure1"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/figure1.py"
