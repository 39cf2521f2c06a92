import json

from tunebench import numerics, progress
from tunebench.job import exit_now

with progress.logged(snakemake.log[0]):
    # Before numpy loads (CIDEr's log and exp follow its kernels).
    numerics.pin(json.loads(snakemake.params.numerics))
    from tunebench.stages import score

    sets = snakemake.params.sets
    score.score_run(
        json.loads(snakemake.params.job),
        dict(zip(sets, snakemake.input.predictions)),
        dict(zip(sets, snakemake.input.tests)),
        snakemake.output[0],
        run_path=snakemake.input.get("run") or None,
    )
exit_now()
