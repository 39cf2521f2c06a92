def replay_inputs(w):
    if training_settings(config, w.method, w.model).get("replay", 0) > 0:
        return [data(name, "train") for name in UPSTREAM]
    return []


# Tuned weights can be tens of GB per cell: unless kept, they go once their predictions are made.
# Adapters (a few MB) are always kept.
RUN = tune_dir("{model}", "{method}", "{dataset}", "{seed}")
TUNED_WEIGHTS = f"{RUN}/{WEIGHTS_FILE}"


rule tune:
    """One tuning run of an adapter method (LoRA, DoRA): a method on a downstream set, from one
    seed's base model. run.json is written last: a killed job leaves no finished-looking output,
    and its rerun resumes from the checkpoint beside the run directory."""
    input:
        base=lambda w: base_input(w.model, w.seed),
        train=data("{dataset}", "train"),
        replay=replay_inputs,
    output:
        tuned=directory(f"{RUN}/{ADAPTER_DIR}"),
        run=f"{RUN}/run.json",
    wildcard_constraints:
        method=one_of(ADAPTER_RUNS),
    benchmark:
        f"{R}/benchmarks/tune/{{model}}.{{method}}.{{dataset}}.seed{{seed}}.tsv"
    params:
        base=lambda w: base_location(w.model, w.seed),
        # Only this method's settings: changing one method reruns only its cells.
        settings=lambda w: canonical(training_settings(config, w.method, w.model)),
        upstream=UPSTREAM,
        code=code_fingerprint("tune"),
    threads: 1
    script:
        "../scripts/tune.py"


use rule tune as tune_weights with:
    output:
        tuned=TUNED_WEIGHTS if config["keep_tuned_weights"] else temp(TUNED_WEIGHTS),
        run=f"{RUN}/run.json",
    wildcard_constraints:
        method=one_of(WEIGHT_RUNS),
