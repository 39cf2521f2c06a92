import json

from tunebench import numerics

job = json.loads(snakemake.params.job)
# First: numpy and torch read the job's CPU numerics when they load.
numerics.pin(job["cpu_numerics"], int(snakemake.resources.get("gpu", 0)))  # torch: in run_stage

from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import predict

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    sets = snakemake.params.sets
    predict.run(
        {
            "job": job,
            "base": snakemake.params.base,
            "tuned": snakemake.input.get("tuned"),
            "run_path": snakemake.input.get("run") or None,
            "test_paths": dict(zip(sets, snakemake.input.tests)),
            "outputs": dict(zip(sets, snakemake.output)),
            "control": plan.job_control(snakemake.config, job["model"]),
        },
        processes=int(snakemake.resources.get("gpu", 0)),
        threads=snakemake.threads,
    )
exit_now()
