import json

from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import report

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    report.landing_page(
        json.loads(snakemake.params.job),
        snakemake.input.tables,
        snakemake.input.plots,
        snakemake.input.loss,
        snakemake.output[0],
    )
exit_now()
