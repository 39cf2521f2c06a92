import json

from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import aggregate

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    job = json.loads(snakemake.params.job)
    seeds = job["seeds"]
    per_seed = len(snakemake.input.base_scores) // len(seeds)  # zero-shot scores: one file per eval set
    aggregate.cell(
        job,
        {seed: snakemake.input.base_scores[i * per_seed:(i + 1) * per_seed] for i, seed in enumerate(seeds)},
        dict(zip(seeds, snakemake.input.tuned_scores)),
        dict(zip(seeds, snakemake.input.runs)),
        dict(zip(seeds, snakemake.params.base)),
        snakemake.input.data,
        snakemake.output[0],
        plan.job_digest(snakemake.params.code, job, snakemake.params.made_from),
    )
exit_now()
