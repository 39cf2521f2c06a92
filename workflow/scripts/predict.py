import json

import torch

from tunebench import files, progress
from tunebench.stages import predict

with progress.logged(snakemake.log[0]):
    files.remove_temporaries(snakemake.output)
    torch.set_num_threads(snakemake.threads)
    sets = snakemake.params.sets
    predict.predict(
        json.loads(snakemake.params.job),
        snakemake.params.base,
        snakemake.input.get("tuned"),
        snakemake.input.get("run") or None,
        dict(zip(sets, snakemake.input.tests)),
        dict(zip(sets, snakemake.output)),
    )
