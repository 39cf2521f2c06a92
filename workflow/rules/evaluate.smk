from tunebench.evaluation.metrics import cider_tokenizer

# The sets the base model answers zero-shot: every downstream and upstream set.
ZEROSHOT_SETS = PLAN.eval_sets(plan.ZEROSHOT, plan.ZEROSHOT_SETS)


rule predict_zeroshot:
    """The base model's greedy answers on every test set: one job per model and seed, one
    model load. Adding a set asks the base model every set again (nothing retrains)."""
    input:
        base=lambda w: PLAN.base_input(w.model, w.seed),
        tests=[PLAN.data(name, "test") for name in ZEROSHOT_SETS],
    output:
        PLAN.zeroshot_predictions("{model}", "{seed}"),
    log:
        log("predict", "{model}.zeroshot.seed{seed}"),
    benchmark:
        f"{R}/benchmarks/predict/{{model}}.zeroshot.seed{{seed}}.tsv"
    conda:
        ENV
    threads: 1
    params:
        job=lambda w: canonical(PLAN.predict_job(w.model, None, ZEROSHOT_SETS)),
        base=lambda w: PLAN.base_location(w.model, w.seed),
        sets=ZEROSHOT_SETS,
        code=code_fingerprint("predict"),
    script:
        "../scripts/predict.py"


rule predict_tuned:
    """A tuned model's greedy answers on its downstream test set and every upstream test set."""
    input:
        base=lambda w: PLAN.base_input(w.model, w.seed),
        tuned=lambda w: PLAN.tuned_path(w.model, w.method, w.dataset, w.seed),
        run=lambda w: PLAN.run_json(w.model, w.method, w.dataset, w.seed),
        tests=lambda w: [
            PLAN.data(name, "test") for name in PLAN.eval_sets(w.method, w.dataset)
        ],
    output:
        PLAN.predictions("{model}", "{method}", "{dataset}", "{seed}"),
    log:
        log("predict", "{model}.{method}.{dataset}.seed{seed}"),
    benchmark:
        f"{R}/benchmarks/predict/{{model}}.{{method}}.{{dataset}}.seed{{seed}}.tsv"
    conda:
        ENV
    threads: 1
    params:
        # The method's settings (wise_alpha) shape its predictions as well as the tuned run does.
        job=lambda w: canonical(
            PLAN.predict_job(w.model, w.method, PLAN.eval_sets(w.method, w.dataset))
        ),
        base=lambda w: PLAN.base_location(w.model, w.seed),
        sets=lambda w: PLAN.eval_sets(w.method, w.dataset),
        code=code_fingerprint("predict"),
    script:
        "../scripts/predict.py"


rule score:
    """Metrics from predictions files: fixing a metric re-scores without regenerating."""
    input:
        predictions=lambda w: PLAN.predictions(w.model, w.run, w.train, w.seed),
        tests=lambda w: [
            PLAN.data(name, "test") for name in PLAN.eval_sets(w.run, w.train)
        ],
        # A tuned run's run.json says whether it diverged (then there is nothing to score).
        run=lambda w: (
            []
            if w.run == plan.ZEROSHOT
            else PLAN.run_json(w.model, w.run, w.train, w.seed)
        ),
    output:
        f"{R}/scores/{{model}}/{{run}}/{{train}}/seed{{seed}}.json",
    log:
        log("score", "{model}.{run}.{train}.seed{seed}"),
    benchmark:
        f"{R}/benchmarks/score/{{model}}.{{run}}.{{train}}.seed{{seed}}.tsv"
    wildcard_constraints:
        run=one_of(METHODS + [plan.ZEROSHOT]),
        train=one_of(DOWNSTREAM + UPSTREAM + [plan.ZEROSHOT_SETS]),
    conda:
        ENV
    params:
        job=lambda w: canonical(PLAN.score_job(PLAN.eval_sets(w.run, w.train))),
        sets=lambda w: PLAN.eval_sets(w.run, w.train),
        code=code_fingerprint("score"),
        tokenizer=cider_tokenizer(),  # CIDEr's caption tokenizer: java appearing or going rescores
        numerics=canonical(PLAN.cpu_numerics()),  # CIDEr's numpy math
    script:
        "../scripts/score.py"
