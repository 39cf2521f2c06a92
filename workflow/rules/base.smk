rule pretrain:
    """The embedded base model: tokenizer + tiny LLaVA-OneVision trained on the upstream train splits."""
    input:
        train=expand(data("{name}", "train"), name=UPSTREAM),
    output:
        directory(base_dir("{model}", "{seed}")),
    params:
        spec=lambda w: config["models"][w.model],
        upstream=UPSTREAM,
    threads: 1
    script:
        "../scripts/pretrain.py"
