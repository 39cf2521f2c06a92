import json

from tunebench import files, plan, progress
from tunebench.job import exit_now
from tunebench.stages import prepare

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    files.remove_temporaries(snakemake.output)
    prepare.prepare(json.loads(snakemake.params.job), snakemake.output.data, snakemake.output.manifest)
exit_now()
