rule pretrain:
    """The embedded base model: tokenizer + tiny LLaVA-OneVision trained on the upstream train splits."""
    input:
        unpack(pretrain_inputs),
    output:
        directory(f"{R}/base/{{model}}/seed{{seed}}"),
    log:
        log("pretrain", "{model}.seed{seed}"),
    benchmark:
        f"{R}/benchmarks/pretrain/{{model}}.seed{{seed}}.tsv"
    wildcard_constraints:
        model=one_of([m for m in MODELS if PLAN.is_embedded(m)]),
    conda:
        ENV
    threads: 1
    params:
        job=lambda w: canonical(PLAN.pretrain_job(w.model, w.seed)),
        code=code_fingerprint("pretrain"),
        made_from=made_from(pretrain_inputs),
    script:
        "../scripts/pretrain.py"
