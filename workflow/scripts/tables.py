import json

from tunebench import plan, progress
from tunebench.stages import aggregate

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    aggregate.tables(json.loads(snakemake.params.job), snakemake.input.cells, dict(snakemake.output.items()))
