from tunebench.stages import aggregate

aggregate.tables(snakemake.config, snakemake.wildcards.model, snakemake.input.cells, dict(snakemake.output.items()))
