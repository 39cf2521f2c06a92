import torch

from tunebench import runs

torch.set_num_threads(snakemake.threads)
runs.predict(
    snakemake.config,
    snakemake.wildcards.model,
    snakemake.wildcards.get("method"),
    snakemake.input.base,
    snakemake.input.get("tuned"),
    dict(zip(snakemake.params.eval_sets, snakemake.input.tests)),
    dict(zip(snakemake.params.eval_sets, snakemake.output)),
)
