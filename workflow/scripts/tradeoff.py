from tunebench import files, progress
from tunebench.stages import report

with progress.logged(snakemake.log[0]):
    files.remove_temporaries(snakemake.output)
    report.tradeoff(snakemake.params.title, snakemake.input.cells, snakemake.output[0])
