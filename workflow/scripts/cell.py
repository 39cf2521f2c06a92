from tunebench.stages import aggregate

seeds = snakemake.params.seeds
per_seed = len(snakemake.input.base_scores) // len(seeds)  # zero-shot scores: one file per eval set
aggregate.cell(
    snakemake.config,
    snakemake.wildcards.model,
    snakemake.wildcards.method,
    snakemake.wildcards.dataset,
    {seed: snakemake.input.base_scores[i * per_seed:(i + 1) * per_seed] for i, seed in enumerate(seeds)},
    dict(zip(seeds, snakemake.input.tuned_scores)),
    dict(zip(seeds, snakemake.input.runs)),
    dict(zip(seeds, snakemake.params.base)),
    snakemake.input.data,
    snakemake.output[0],
)
