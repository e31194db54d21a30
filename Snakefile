# prunebias: train dense models, prune them, dump predictions, measure what pruning did to bias.
# Thin rules over the prunebias package; see README.md and workflow/rules/.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


report: "reports/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/criteria.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
        criteria_outputs(),
        criteria_figure_files(),
        effects_outputs(),
        design_outputs(),
        f"{RESULTS}/report.html",
