rule prepare:
    """One dataset split in tunebench's record schema (Parquet), and its manifest (source, counts, skipped rows)."""
    output:
        data=f"{R}/data/{{name}}/{{split}}.parquet",
        manifest=f"{R}/data/{{name}}/{{split}}.manifest.json",
    wildcard_constraints:
        name=one_of(config["datasets"]),
        split="train|test",
    benchmark:
        f"{R}/benchmarks/prepare/{{name}}.{{split}}.tsv"
    params:
        entry=lambda w: canonical(config["datasets"][w.name]),
        data_seed=config["data_seed"],
        code=code_fingerprint("prepare"),
    script:
        "../scripts/prepare.py"
