rule pretrain:
    """The embedded base model: tokenizer + tiny LLaVA-OneVision trained on the upstream train splits."""
    input:
        train=expand(data("{name}", "train"), name=UPSTREAM),
    output:
        directory(base_dir("{model}", "{seed}")),
    benchmark:
        f"{R}/benchmarks/pretrain/{{model}}.seed{{seed}}.tsv"
    params:
        spec=lambda w: canonical({k: config["models"][w.model][k] for k in ("architecture", "pretrain")}),
        upstream=UPSTREAM,
        code=code_fingerprint("pretrain"),
    wildcard_constraints:
        model=one_of(models_from("embedded")),
    threads: 1
    script:
        "../scripts/pretrain.py"
