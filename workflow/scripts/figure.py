"""Original vs adversarial accuracy per method, error bars over seeds."""
from lwob.jobs import job_log

with job_log(snakemake):
    import pandas as pd

    from lwob.figures import origin_vs_adv

    cfg = snakemake.config
    origin_vs_adv(
        pd.read_csv(snakemake.input.metrics),
        snakemake.params.study,
        cfg["tasks"],
        cfg["methods"],
        cfg["models"],
        out_pdf=snakemake.output.pdf,
        out_png=snakemake.output.png,
    )
