from pathlib import Path

from tunebench import study

study.tables(
    snakemake.config,
    snakemake.wildcards.model,
    snakemake.input.cells,
    Path(snakemake.output.md).with_suffix(""),
    snakemake.output.plot,
)
