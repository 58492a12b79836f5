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
include: "rules/analysis.smk"
include: "rules/resources.smk"


rule all:
    input:
        final_outputs(),
        resource_outputs(),
