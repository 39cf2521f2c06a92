import json

from tunebench import plan, progress
from tunebench.stages import prepare

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    prepare.prepare(json.loads(snakemake.params.job), snakemake.output.data, snakemake.output.manifest)
