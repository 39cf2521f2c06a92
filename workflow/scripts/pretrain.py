import torch

from tunebench.stages import pretrain

torch.set_num_threads(snakemake.threads)
pretrain.pretrain(
    snakemake.config,
    snakemake.wildcards.model,
    int(snakemake.wildcards.seed),
    dict(zip(snakemake.params.upstream, snakemake.input.train)),
    snakemake.output[0],
)
