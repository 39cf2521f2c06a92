import json

from tunebench import plan, progress
from tunebench.stages import report

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    report.figures_page(json.loads(snakemake.params.job), snakemake.input.cells, dict(snakemake.output.items()))
