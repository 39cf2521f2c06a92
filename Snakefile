# tunebench: how much does tuning a multimodal LLM gain on your task, and how much does it forget?
# dataset preparation -> zero-shot eval -> tuning -> downstream and upstream eval -> E/F/O tables.
from tunebench.config import check_config_files

# The embedded study unless --configfile names another; never a merge of the two (a merge would mix
# the embedded models and datasets into every other study). --config alone overrides keys of it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Every config file, read again strictly (a duplicate key refused: Snakemake keeps the last one), must be
# a study config (a target typed after --configfile is read as one).
check_config_files(workflow.configfiles)


# The resolved plan (tunebench.plan): schema, names and every setting checked before any job runs.
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


report: report_page()


# Seconds-long steps run on the submit host, not as cluster jobs (and `prepare` may need the internet,
# which compute nodes often lack). Their resources, and the model jobs', live in profiles/.
localrules:
    all,
    prepare,
    score,
    cell,
    tables,
    tradeoff,
    figures,
    landing,


rule all:
    input:
        PLAN.all_outputs(),
