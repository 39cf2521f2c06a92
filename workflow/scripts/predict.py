import torch

from tunebench import runs

torch.set_num_threads(snakemake.threads)
runs.predict(
    snakemake.config,
    snakemake.wildcards.model,
    snakemake.wildcards.get("method"),
    snakemake.params.base,
    snakemake.input.get("tuned"),
    snakemake.input.get("run") or None,
    dict(zip(snakemake.params.eval_sets, snakemake.input.tests)),
    dict(zip(snakemake.params.eval_sets, snakemake.output)),
)
