import json

from tunebench import progress
from tunebench.job import exit_now
from tunebench.stages import aggregate

with progress.logged(snakemake.log[0]):
    aggregate.tables(json.loads(snakemake.params.job), snakemake.input.cells, dict(snakemake.output.items()))
exit_now()
