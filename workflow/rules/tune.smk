# Tuned weights can be tens of GB per cell: unless kept, they go once their predictions are made.
# Adapters (a few MB) are always kept.
RUN = f"{R}/tune/{{model}}/{{method}}/{{dataset}}/seed{{seed}}"
TUNED_WEIGHTS = f"{RUN}/{plan.WEIGHTS_FILE}"


rule tune:
    """One tuning run of a method saved as an adapter (LoRA, DoRA, ...): a method on a downstream set,
    from one seed's base model. run.json is written last: a killed job leaves no finished-looking
    output, and its rerun resumes from the checkpoint beside the run directory."""
    input:
        unpack(tune_inputs),
    output:
        tuned=directory(f"{RUN}/{plan.ADAPTER_DIR}"),
        run=f"{RUN}/run.json",
    log:
        log("tune", "{model}.{method}.{dataset}.seed{seed}"),
    benchmark:
        f"{R}/benchmarks/tune/{{model}}.{{method}}.{{dataset}}.seed{{seed}}.tsv"
    wildcard_constraints:
        method=one_of(PLAN.runs("adapter")),
    conda:
        ENV
    threads: 1
    params:
        # Only this method's settings for this model: changing one method reruns only its cells.
        job=lambda w: canonical(PLAN.tune_job(w.model, w.method, w.dataset, w.seed)),
        base=lambda w: PLAN.base_location(w.model, w.seed),
        code=code_fingerprint("tune"),
        made_from=made_from(tune_inputs),
    script:
        "../scripts/tune.py"


use rule tune as tune_weights with:
    output:
        tuned=(
            TUNED_WEIGHTS if PLAN.config["keep_tuned_weights"] else temp(TUNED_WEIGHTS)
        ),
        run=f"{RUN}/run.json",
    wildcard_constraints:
        method=one_of(PLAN.runs("tensors")),
