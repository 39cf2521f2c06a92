def replay_inputs(w):
    if training_settings(config, w.method).get("replay", 0) > 0:
        return [data(name, "train") for name in UPSTREAM]
    return []


rule tune:
    """One tuning run: a method on a downstream set, from one seed's base model."""
    input:
        base=base_dir("{model}", "{seed}"),
        train=data("{dataset}", "train"),
        replay=replay_inputs,
    output:
        directory(tune_dir("{model}", "{method}", "{dataset}", "{seed}")),
    wildcard_constraints:
        method=one_of(TUNED),
    benchmark:
        f"{R}/benchmarks/tune/{{model}}.{{method}}.{{dataset}}.seed{{seed}}.tsv"
    params:
        # Only this method's settings: changing one method reruns only its cells.
        settings=lambda w: canonical(training_settings(config, w.method)),
        upstream=UPSTREAM,
    threads: 1
    script:
        "../scripts/tune.py"
