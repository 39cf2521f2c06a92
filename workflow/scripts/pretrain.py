import json

from tunebench import numerics

job = json.loads(snakemake.params.job)
# First: numpy and torch read the job's CPU numerics when they load.
numerics.pin(job["cpu_numerics"], int(snakemake.resources.get("gpu", 0)), snakemake.threads)

from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import pretrain

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    pretrain.pretrain(job, dict(zip(job["upstream"], snakemake.input.train)), snakemake.output[0],
                      plan.job_control(snakemake.config, job["model"]), snakemake.params.code)
exit_now()
