from tunebench.stages import predict

predict.run(
    {
        "config": snakemake.config,
        "model_name": snakemake.wildcards.model,
        "method": snakemake.wildcards.get("method"),
        "base_dir": snakemake.params.base,
        "tuned": snakemake.input.get("tuned"),
        "run_path": snakemake.input.get("run") or None,
        "test_paths": dict(zip(snakemake.params.eval_sets, snakemake.input.tests)),
        "outputs": dict(zip(snakemake.params.eval_sets, snakemake.output)),
    },
    processes=int(snakemake.resources.get("gpu", 0)),
    threads=snakemake.threads,
)
