import json

from tunebench import numerics

# First: numpy reads the CPU numerics when it loads (CIDEr's log and exp follow its kernels).
numerics.pin(json.loads(snakemake.params.numerics))

from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import score

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    sets = snakemake.params.sets
    score.score_run(
        json.loads(snakemake.params.job),
        dict(zip(sets, snakemake.input.predictions)),
        dict(zip(sets, snakemake.input.tests)),
        snakemake.output[0],
        run_path=snakemake.input.get("run") or None,
    )
exit_now()
