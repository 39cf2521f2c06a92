import json

from tunebench import progress
from tunebench.job import exit_now
from tunebench.stages import report

with progress.logged(snakemake.log[0]):
    report.figures_page(json.loads(snakemake.params.job), snakemake.input.cells, dict(snakemake.output.items()))
exit_now()
