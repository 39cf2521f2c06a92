import torch

from tunebench import runs

torch.set_num_threads(snakemake.threads)
runs.tune(
    snakemake.config,
    snakemake.wildcards.model,
    snakemake.wildcards.method,
    snakemake.wildcards.dataset,
    int(snakemake.wildcards.seed),
    snakemake.params.base,
    snakemake.input.train,
    dict(zip(snakemake.params.upstream, snakemake.input.replay)),
    snakemake.output[0],
)
