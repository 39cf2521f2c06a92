from tunebench.stages import report

report.figures(snakemake.config, snakemake.wildcards.model, snakemake.input.cells, dict(snakemake.output.items()))
