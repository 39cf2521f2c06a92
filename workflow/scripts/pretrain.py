import json

from tunebench import numerics, progress
from tunebench.job import exit_now

with progress.logged(snakemake.log[0]):
    job = json.loads(snakemake.params.job)
    # Before torch loads: the libraries read the job's CPU numerics when they start.
    numerics.pin(job["cpu_numerics"], snakemake.resources.get("gpu", 0), snakemake.threads)
    from tunebench import plan
    from tunebench.stages import pretrain

    pretrain.pretrain(job, dict(zip(job["upstream"], snakemake.input.train)), snakemake.output[0],
                      plan.checkpoint_every(snakemake.config))
exit_now()
