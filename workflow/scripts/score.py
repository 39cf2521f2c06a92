from tunebench.stages import score

names = snakemake.params.eval_sets
score.score_run(
    snakemake.config,
    dict(zip(names, snakemake.input.predictions)),
    dict(zip(names, snakemake.input.tests)),
    snakemake.output[0],
    run_path=snakemake.input.get("run") or None,
)
