# PEFT vs full fine-tuning on standard and adversarial test sets: a table of contents.
#   snakemake --profile slurm all                                   (the paper, on a GPU cluster)
#   snakemake --profile profiles/local --configfile config/demo.yaml all   (offline CPU demo)
from snakemake.utils import min_version

min_version("9.0")


# A --configfile given on the command line replaces the paper config instead of being
# deep-merged into it, so a small config never inherits the paper's studies.
if not config:

    configfile: "config/config.yaml"


report: "reports/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/selection.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"
include: "rules/increments.smk"
include: "rules/report.smk"
include: "rules/resources.smk"


# The report's text (reports/workflow.rst, the captions) inserts config strings only through
# the `rst` and `rst_literal` filters, which escape them for reStructuredText.
from lwob.report.escaping import register_report_helpers
from lwob.report import failures
from lwob.plan import runlock

register_report_helpers()
FAILURE_CONTEXT = dict(runs=RUNS, studies=STUDIES, config=config, skipped=SKIPPED,
                       template_path=REPO / "reports/templates/robustness_table.tex.j2")


# Called in the main process of a run that executes jobs only (not -n, --report, --lint, jobs).
onstart:
    # Snakemake's own lock is deleted when any other run ends: hold ours for the whole run.
    runlock.hold_for_run()


onsuccess:
    failures.after_run(workflow, **FAILURE_CONTEXT)
    runlock.release()


onerror:
    # Record the failed jobs; under --keep-going, tables from the finished runs, failures as "err".
    failures.after_run(workflow, **FAILURE_CONTEXT)
    runlock.release()


rule all:
    input:
        final_outputs(),
        resource_outputs(),
