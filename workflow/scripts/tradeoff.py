from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import report

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    report.tradeoff(snakemake.params.title, snakemake.input.cells, snakemake.output.png)
exit_now()
