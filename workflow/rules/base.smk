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
    wildcard_constraints:
        model=one_of(models_from("embedded")),
    threads: 1
    script:
        "../scripts/pretrain.py"


rule hf_base:
    """A checkpoint's base: a record of the HF id or directory the models entry names (loaded by each job)."""
    output:
        directory(base_dir("{model}", "{seed}")),
    params:
        spec=lambda w: canonical(config["models"][w.model]),
    wildcard_constraints:
        model=one_of(models_from("hf")),
    script:
        "../scripts/hf_base.py"
