rule prepare:
    """One dataset split in tunebench's record schema (Parquet), and its manifest (source, counts, skipped rows)."""
    output:
        data=f"{R}/data/{{name}}/{{split}}.parquet",
        manifest=f"{R}/data/{{name}}/{{split}}.manifest.json",
    log:
        log("prepare", "{name}.{split}"),
    benchmark:
        f"{R}/benchmarks/prepare/{{name}}.{{split}}.tsv"
    wildcard_constraints:
        name=one_of(PLAN.config["datasets"]),
        split="train|test",
    conda:
        ENV
    params:
        job=lambda w: canonical(PLAN.prepare_job(w.name, w.split)),
        code=code_fingerprint("prepare"),
    script:
        "../scripts/prepare.py"
