import json

from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import report

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    report.figures_page(json.loads(snakemake.params.job), snakemake.input.cells, dict(snakemake.output.items()))
exit_now()
