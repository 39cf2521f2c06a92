from pathlib import Path

from tunebench import study

seeds = snakemake.params.seeds
study.cell(
    snakemake.config,
    snakemake.wildcards.model,
    snakemake.wildcards.method,
    snakemake.wildcards.dataset,
    dict(zip(seeds, snakemake.input.base_scores)),
    dict(zip(seeds, snakemake.input.tuned_scores)),
    {seed: Path(d) / "run.json" for seed, d in zip(seeds, snakemake.input.tuned)},
    dict(zip(seeds, snakemake.params.base)),
    snakemake.input.data,
    snakemake.output[0],
)
