# Aggregation over runs and seeds, then one LaTeX/CSV table and one figure per study.


rule aggregate:
    input:
        evals=run_outputs("eval"),
        records=run_outputs("train"),
    output:
        metrics=report("results/metrics.csv", caption="../reports/captions/metrics.rst", category="Data"),
        summary=report("results/summary.csv", caption="../reports/captions/summary.rst", category="Data"),
        runs=report("results/runs.csv", caption="../reports/captions/runs.rst", category="Provenance"),
    log:
        "logs/aggregate.log",
    params:
        code=deps.code_of("aggregate"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/aggregate.py"


rule statistics:
    input:
        metrics="results/metrics.csv",
        predictions=[f"results/eval/{r.path}.predictions.parquet" for r in RUNS],
    output:
        comparisons=report("results/statistics/comparisons.csv", caption="../reports/captions/comparisons.rst", category="Statistics"),
        stability=report("results/statistics/stability.csv", caption="../reports/captions/stability.rst", category="Statistics"),
        correlation=report("results/statistics/stability_correlation.csv", caption="../reports/captions/stability.rst", category="Statistics"),
    log:
        "logs/statistics.log",
    params:
        code=deps.code_of("statistics"),
    resources:
        **slurm_placement("cpu"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/statistics.py"


rule table:
    input:
        summary="results/summary.csv",
        template=REPO / "reports/templates/robustness_table.tex.j2",
        reference=reference_input,
    output:
        tex=report("results/tables/{study}.tex", caption="../reports/captions/table.rst", category="Tables", subcategory="{study}"),
        csv=report("results/tables/{study}.csv", caption="../reports/captions/table_csv.rst", category="Tables", subcategory="{study}"),
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


rule claims:
    input:
        summary="results/summary.csv",
        comparisons="results/statistics/comparisons.csv",
        runs="results/runs.csv",
        figure1=["results/increments/figure1.csv"] if FIGURE1 else [],
        template=REPO / "reports/templates/claims.html.j2",
    output:
        csv="results/claims.csv",
        html=report("results/claims.html", caption="../reports/captions/claims.rst", category="Claims"),
    log:
        "logs/claims.log",
    params:
        config=deps.claims_view(config),
        code=deps.code_of("claims"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/claims.py"


rule paper_table:
    input:
        table="results/tables/{study}.csv",
        template=REPO / "reports/templates/paper_comparison.tex.j2",
    output:
        tex=report("results/tables/paper/{study}.tex", caption="../reports/captions/paper_table.rst", category="Paper side by side"),
        csv=report("results/tables/paper/{study}.csv", caption="../reports/captions/paper_table.rst", category="Paper side by side"),
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
        metrics="results/metrics.csv",
        runs=figure_runs_input,
    output:
        pdf="results/figures/{study}.pdf",
        png=report("results/figures/{study}.png", caption="../reports/captions/figure.rst", category="Figures", subcategory="{study}"),
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
