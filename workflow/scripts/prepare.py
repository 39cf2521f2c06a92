import json

from tunebench import files, progress
from tunebench.stages import prepare

with progress.logged(snakemake.log[0]):
    files.remove_temporaries(snakemake.output)
    prepare.prepare(json.loads(snakemake.params.job), snakemake.output.data, snakemake.output.manifest)
