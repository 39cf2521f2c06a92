import json

from tunebench import numerics

job = json.loads(snakemake.params.job)
# First: numpy and torch read the job's CPU numerics when they load (a multi-GPU run's processes
# inherit them).
numerics.pin(job["cpu_numerics"], int(snakemake.resources.get("gpu", 0)))  # torch: in run_stage

from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import tune

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    tune.run(
        {
            "job": job,
            "base": snakemake.params.base,
            "train_path": snakemake.input.train,
            "replay_paths": dict(zip(job["replay"], snakemake.input.replay)),
            "tuned_path": snakemake.output.tuned,
            "run_path": snakemake.output.run,
            "control": plan.job_control(snakemake.config, job["model"]),
            "code": snakemake.params.code,
        },
        processes=int(snakemake.resources.get("gpu", 0)),
        threads=snakemake.threads,
    )
exit_now()
