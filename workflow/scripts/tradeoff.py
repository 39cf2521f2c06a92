from tunebench import progress
from tunebench.job import exit_now
from tunebench.stages import report

with progress.logged(snakemake.log[0]):
    report.tradeoff(snakemake.params.title, snakemake.input.cells, snakemake.output[0])
exit_now()
