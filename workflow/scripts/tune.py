from tunebench.stages import tune

tune.run(
    {
        "config": snakemake.config,
        "model_name": snakemake.wildcards.model,
        "method": snakemake.wildcards.method,
        "dataset": snakemake.wildcards.dataset,
        "seed": int(snakemake.wildcards.seed),
        "base_dir": snakemake.params.base,
        "train_path": snakemake.input.train,
        "replay_paths": dict(zip(snakemake.params.upstream, snakemake.input.replay)),
        "tuned_path": snakemake.output.tuned,
        "run_path": snakemake.output.run,
    },
    processes=int(snakemake.resources.get("gpu", 0)),
    threads=snakemake.threads,
)
