import json

from tunebench import plan, progress
from tunebench.stages import score

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    sets = snakemake.params.sets
    score.score_run(
        json.loads(snakemake.params.job),
        dict(zip(sets, snakemake.input.predictions)),
        dict(zip(sets, snakemake.input.tests)),
        snakemake.output[0],
        run_path=snakemake.input.get("run") or None,
    )
