from tunebench.stages import prepare

prepare.prepare(snakemake.config, snakemake.wildcards.name, snakemake.wildcards.split, snakemake.output.data,
              snakemake.output.manifest)
