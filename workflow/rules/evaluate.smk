from tunebench.evaluation.metrics import cider_tokenizer


rule predict_zeroshot:
    """The base model's greedy answers on one test set (one job per set: adding a dataset
    evaluates the base model on that set alone)."""
    input:
        base=lambda w: PLAN.base_input(w.model, w.seed),
        tests=[PLAN.data("{name}", "test")],
    output:
        f"{R}/predictions/{{model}}/{plan.ZEROSHOT}/{{name}}/seed{{seed}}/{{name}}.jsonl",
    log:
        log("predict", "{model}.zeroshot.{name}.seed{seed}"),
    benchmark:
        f"{R}/benchmarks/predict/{{model}}.zeroshot.{{name}}.seed{{seed}}.tsv"
    wildcard_constraints:
        name=one_of(DOWNSTREAM + UPSTREAM),
    conda:
        ENV
    threads: 1
    params:
        job=lambda w: canonical(PLAN.predict_job(w.model, None, [w.name])),
        base=lambda w: PLAN.base_location(w.model, w.seed),
        sets=lambda w: [w.name],
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
        train=one_of(DOWNSTREAM + UPSTREAM),
    conda:
        ENV
    params:
        job=lambda w: canonical(PLAN.score_job(PLAN.eval_sets(w.run, w.train))),
        sets=lambda w: PLAN.eval_sets(w.run, w.train),
        code=code_fingerprint("score"),
        tokenizer=cider_tokenizer(),  # CIDEr's caption tokenizer: java appearing or going rescores
    script:
        "../scripts/score.py"
