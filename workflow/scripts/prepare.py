from tunebench import study

study.prepare(snakemake.config, snakemake.wildcards.name, snakemake.wildcards.split, snakemake.output.data,
              snakemake.output.manifest)
