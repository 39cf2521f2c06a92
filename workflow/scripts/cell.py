import json

from tunebench import progress
from tunebench.job import exit_now
from tunebench.stages import aggregate

with progress.logged(snakemake.log[0]):
    job = json.loads(snakemake.params.job)
    seeds = job["seeds"]
    aggregate.cell(
        job,
        dict(zip(seeds, snakemake.input.base_scores)),
        dict(zip(seeds, snakemake.input.tuned_scores)),
        dict(zip(seeds, snakemake.input.runs)),
        dict(zip(seeds, snakemake.params.base)),
        snakemake.input.data,
        snakemake.output[0],
    )
exit_now()
