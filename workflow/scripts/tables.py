from tunebench import study

study.tables(snakemake.config, snakemake.wildcards.model, snakemake.input.cells, dict(snakemake.output.items()))
