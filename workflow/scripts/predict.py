import json

from tunebench import numerics, progress
from tunebench.job import exit_now

with progress.logged(snakemake.log[0]):
    job = json.loads(snakemake.params.job)
    # Before torch loads: the libraries read the job's CPU numerics when they start.
    numerics.pin(job["cpu_numerics"], snakemake.resources.get("gpu", 0), snakemake.threads)
    from tunebench.stages import predict

    sets = snakemake.params.sets
    predict.predict(
        job,
        snakemake.params.base,
        snakemake.input.get("tuned"),
        snakemake.input.get("run") or None,
        dict(zip(sets, snakemake.input.tests)),
        dict(zip(sets, snakemake.output)),
    )
exit_now()
