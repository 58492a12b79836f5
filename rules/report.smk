# What the reader sees: one LaTeX/CSV table (lwob.report.tables) and one figure
# (lwob.report.figures) per study, the study beside the paper's numbers, and the claims page
# (lwob.analysis.claims). What they show of the config (display names, colours) is a param.


rule table:
    input:
        summary=paths.SUMMARY,
        template=REPO / "reports/templates/robustness_table.tex.j2",
        reference=reference_input,
    output:
        tex=report(paths.of(paths.TABLE, study="{study}", ext="tex"), caption="../reports/captions/table.rst", category="Tables", subcategory="{study}"),
        csv=report(paths.of(paths.TABLE, study="{study}", ext="csv"), caption="../reports/captions/table_csv.rst", category="Tables", subcategory="{study}"),
    log:
        "logs/table/{study}.log",
    params:
        study=study_spec,
        skipped=study_skipped_sets,
        shown=PRESENTATION,
        code=deps.code_of("table"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/table.py"


rule paper_table:
    input:
        table=paths.of(paths.TABLE, study="{study}", ext="csv"),
        template=REPO / "reports/templates/paper_comparison.tex.j2",
    output:
        tex=report(paths.of(paths.PAPER_TABLE, study="{study}", ext="tex"), caption="../reports/captions/paper_table.rst", category="Paper side by side"),
        csv=report(paths.of(paths.PAPER_TABLE, study="{study}", ext="csv"), caption="../reports/captions/paper_table.rst", category="Paper side by side"),
    log:
        "logs/paper_table/{study}.log",
    params:
        study=study_spec,
        note=config.get("reference_note"),
        code=deps.code_of("paper_table"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/paper_table.py"


rule figure:
    input:
        metrics=paths.METRICS,
        runs=figure_runs_input,
    output:
        pdf=paths.of(paths.FIGURE, study="{study}", ext="pdf"),
        png=report(paths.of(paths.FIGURE, study="{study}", ext="png"), caption="../reports/captions/figure.rst", category="Figures", subcategory="{study}"),
    log:
        "logs/figure/{study}.log",
    params:
        study=study_spec,
        shown=PRESENTATION,
        code=deps.code_of("figure"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/figure.py"


rule generations:
    input:
        predictions=study_generation_predictions,
    output:
        csv=paths.of(paths.GENERATIONS, study="{study}", ext="csv"),
        html=report(paths.of(paths.GENERATIONS, study="{study}", ext="html"), caption="../reports/captions/generations.rst", category="Generations", subcategory="{study}"),
    log:
        "logs/generations/{study}.log",
    params:
        runs=study_generation_runs,
        study=study_spec,
        code=deps.code_of("generations"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/generations.py"


rule claims:
    input:
        summary=paths.SUMMARY,
        comparisons=paths.of(paths.STATISTICS, name="comparisons"),
        runs=paths.RUNS_TABLE,
        figure1=figure1_csv(),
        template=REPO / "reports/templates/claims.html.j2",
    output:
        csv=paths.CLAIMS_CSV,
        html=report(paths.CLAIMS_HTML, caption="../reports/captions/claims.rst", category="Claims"),
    log:
        "logs/claims.log",
    params:
        config=deps.claims_view(config),
        code=deps.code_of("claims"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/claims.py"
