rule predict_zeroshot:
    """The base model's greedy answers on every downstream and upstream test set."""
    input:
        base=base_dir("{model}", "{seed}"),
        tests=[data(name, "test") for name in DOWNSTREAM + UPSTREAM],
    output:
        [f"{R}/predictions/{{model}}/zeroshot/all/seed{{seed}}/{name}.jsonl" for name in DOWNSTREAM + UPSTREAM],
    benchmark:
        f"{R}/benchmarks/predict/{{model}}.zeroshot.seed{{seed}}.tsv"
    params:
        eval_sets=DOWNSTREAM + UPSTREAM,
    threads: 1
    script:
        "../scripts/predict.py"


rule predict_tuned:
    """A tuned model's greedy answers on its downstream test set and every upstream test set."""
    input:
        base=base_dir("{model}", "{seed}"),
        tuned=lambda w: tune_dir(w.model, tune_method(config, w.method), w.dataset, w.seed),
        tests=lambda w: [data(name, "test") for name in [w.dataset] + UPSTREAM],
    output:
        f"{R}/predictions/{{model}}/{{method}}/{{dataset}}/seed{{seed}}/{{dataset}}.jsonl",
        [f"{R}/predictions/{{model}}/{{method}}/{{dataset}}/seed{{seed}}/{name}.jsonl" for name in UPSTREAM],
    benchmark:
        f"{R}/benchmarks/predict/{{model}}.{{method}}.{{dataset}}.seed{{seed}}.tsv"
    params:
        eval_sets=lambda w: [w.dataset] + UPSTREAM,
        # Prediction depends on the method's settings (wise_alpha) as well as on the tuned run.
        settings=lambda w: canonical(method_settings(config, w.method)),
    threads: 1
    script:
        "../scripts/predict.py"


rule score:
    """Metrics from predictions files: fixing a metric re-scores without regenerating."""
    input:
        predictions=lambda w: [
            f"{R}/predictions/{run_prefix(w.model, w.run, w.train, w.seed)}/{name}.jsonl"
            for name in eval_sets(config, w.run, w.train)
        ],
        tests=lambda w: [data(name, "test") for name in eval_sets(config, w.run, w.train)],
    output:
        f"{R}/scores/{{model}}/{{run}}/{{train}}/seed{{seed}}.json",
    wildcard_constraints:
        run=one_of(METHODS + ["zeroshot"]),
        train=one_of(DOWNSTREAM + ["all"]),
    benchmark:
        f"{R}/benchmarks/score/{{model}}.{{run}}.{{train}}.seed{{seed}}.tsv"
    params:
        eval_sets=lambda w: eval_sets(config, w.run, w.train),
        datasets=lambda w: canonical({name: config["datasets"][name] for name in eval_sets(config, w.run, w.train)}),
    script:
        "../scripts/score.py"
