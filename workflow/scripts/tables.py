import json

from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import aggregate

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    aggregate.tables(json.loads(snakemake.params.job), snakemake.input.cells, dict(snakemake.output.items()))
exit_now()
