def replay_inputs(w):
    if method_settings(config, w.method, w.model).get("replay", 0) > 0:
        return [data(name, "train") for name in UPSTREAM]
    return []


rule tune:
    """One tuning run: a method on a downstream set, from one seed's base model."""
    input:
        base=lambda w: base_input(w.model, w.seed),
        train=data("{dataset}", "train"),
        replay=replay_inputs,
    output:
        directory(tune_dir("{model}", "{method}", "{dataset}", "{seed}")),
    benchmark:
        f"{R}/benchmarks/tune/{{model}}.{{method}}.{{dataset}}.seed{{seed}}.tsv"
    params:
        base=lambda w: base_location(w.model, w.seed),
        # Only this method's settings: changing one method reruns only its cells.
        settings=lambda w: canonical(method_settings(config, w.method, w.model)),
        upstream=UPSTREAM,
    threads: 1
    script:
        "../scripts/tune.py"
