import json

from tunebench import numerics, progress
from tunebench.job import exit_now

with progress.logged(snakemake.log[0]):
    job = json.loads(snakemake.params.job)
    gpus = int(snakemake.resources.get("gpu", 0))
    # Before torch loads: the libraries read the job's CPU numerics when they start (the processes
    # of a multi-GPU run inherit them).
    numerics.pin(job["cpu_numerics"], gpus, snakemake.threads)
    from tunebench import plan
    from tunebench.stages import tune

    tune.run(
        {
            "job": job,
            "base": snakemake.params.base,
            "train_path": snakemake.input.train,
            "replay_paths": dict(zip(job["replay"], snakemake.input.replay)),
            "tuned_path": snakemake.output.tuned,
            "run_path": snakemake.output.run,
            "checkpoint_every": plan.checkpoint_every(snakemake.config),
        },
        processes=gpus,
        threads=snakemake.threads,
    )
exit_now()
