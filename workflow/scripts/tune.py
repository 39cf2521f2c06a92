import json

from tunebench import files, plan, progress
from tunebench.stages import tune

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    job = json.loads(snakemake.params.job)
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
