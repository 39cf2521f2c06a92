from tunebench import study

study.figures(snakemake.config, snakemake.wildcards.model, snakemake.input.cells, dict(snakemake.output.items()))
