import json

import torch

from tunebench import plan, progress
from tunebench.stages import pretrain

with progress.logged(snakemake.log[0], plan.progress(snakemake.config)):
    torch.set_num_threads(snakemake.threads)
    job = json.loads(snakemake.params.job)
    pretrain.pretrain(job, dict(zip(job["upstream"], snakemake.input.train)), snakemake.output[0],
                      plan.job_control(snakemake.config, job["model"]))
