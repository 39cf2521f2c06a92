from tunebench.evaluation.metrics import cider_tokenizer


rule predict_zeroshot:
    """The base model's greedy answers on one test set (one job per set: adding a dataset
    evaluates the base model on that set alone)."""
    input:
        unpack(zeroshot_inputs),
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
        job=lambda w: canonical(PLAN.predict_job(w.model, plan.ZEROSHOT, w.name)),
        base=lambda w: PLAN.base_location(w.model, w.seed),
        sets=lambda w: [w.name],
        code=code_fingerprint("predict"),
        made_from=made_from(zeroshot_inputs),
    script:
        "../scripts/predict.py"


rule predict_tuned:
    """A tuned model's greedy answers on its downstream test set and every upstream test set."""
    input:
        unpack(predict_inputs),
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
        # The method's prediction settings (wise_alpha) shape its predictions as its tuned run does.
        job=lambda w: canonical(PLAN.predict_job(w.model, w.method, w.dataset)),
        base=lambda w: PLAN.base_location(w.model, w.seed),
        sets=lambda w: PLAN.eval_sets(w.method, w.dataset),
        code=code_fingerprint("predict"),
        made_from=made_from(predict_inputs),
    script:
        "../scripts/predict.py"


rule score:
    """Metrics from predictions files: fixing a metric re-scores without regenerating."""
    input:
        unpack(score_inputs),
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
        # What wrote the predictions: a prediction-code or -settings change rescores, even when
        # the predictions of a killed job are gone.
        made_from=made_from(score_inputs),
        tokenizer=cider_tokenizer(),  # CIDEr's caption tokenizer: java appearing or going rescores
        numerics=canonical(PLAN.cpu_numerics()),  # CIDEr's numpy math
    script:
        "../scripts/score.py"
