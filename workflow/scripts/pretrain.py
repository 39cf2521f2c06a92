import torch

from tunebench import runs

torch.set_num_threads(snakemake.threads)
runs.pretrain(
    snakemake.config,
    snakemake.wildcards.model,
    int(snakemake.wildcards.seed),
    dict(zip(snakemake.params.upstream, snakemake.input.train)),
    snakemake.output[0],
)
