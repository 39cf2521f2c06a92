from tunebench import plan, progress
from tunebench.stages import report

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    report.tradeoff(snakemake.params.title, snakemake.input.cells, snakemake.output.png)
