import torch

from tunebench.stages import predict

torch.set_num_threads(snakemake.threads)
predict.predict(
    snakemake.config,
    snakemake.wildcards.model,
    snakemake.wildcards.get("method"),
    snakemake.params.base,
    snakemake.input.get("tuned"),
    snakemake.input.get("run") or None,
    dict(zip(snakemake.params.eval_sets, snakemake.input.tests)),
    dict(zip(snakemake.params.eval_sets, snakemake.output)),
)
