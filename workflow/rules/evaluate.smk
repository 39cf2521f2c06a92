from tunebench.evaluation.metrics import cider_tokenizer


rule predict_zeroshot:
    """The base model's greedy answers on one test set (one job per set: adding a dataset
    evaluates the base model on that set alone)."""
    input:
        base=lambda w: base_input(w.model, w.seed),
        tests=[data("{name}", "test")],
    output:
        f"{R}/predictions/{{model}}/zeroshot/{{name}}/seed{{seed}}/{{name}}.jsonl",
    wildcard_constraints:
        name=one_of(DOWNSTREAM + UPSTREAM),
    benchmark:
        f"{R}/benchmarks/predict/{{model}}.zeroshot.{{name}}.seed{{seed}}.tsv"
    params:
        base=lambda w: base_location(w.model, w.seed),
        eval_sets=lambda w: [w.name],
        code=code_fingerprint("predict"),
    threads: 1
    script:
        "../scripts/predict.py"


rule predict_tuned:
    """A tuned model's greedy answers on its downstream test set and every upstream test set."""
    input:
        base=lambda w: base_input(w.model, w.seed),
        tuned=lambda w: tuned_path(w.model, w.method, w.dataset, w.seed),
        run=lambda w: run_json(w.model, w.method, w.dataset, w.seed),
        tests=lambda w: [data(name, "test") for name in [w.dataset] + UPSTREAM],
    output:
        f"{R}/predictions/{{model}}/{{method}}/{{dataset}}/seed{{seed}}/{{dataset}}.jsonl",
        [f"{R}/predictions/{{model}}/{{method}}/{{dataset}}/seed{{seed}}/{name}.jsonl" for name in UPSTREAM],
    benchmark:
        f"{R}/benchmarks/predict/{{model}}.{{method}}.{{dataset}}.seed{{seed}}.tsv"
    params:
        base=lambda w: base_location(w.model, w.seed),
        eval_sets=lambda w: [w.dataset] + UPSTREAM,
        code=code_fingerprint("predict"),
        # Prediction depends on the method's settings (wise_alpha) as well as on the tuned run.
        settings=lambda w: canonical(method_settings(config, w.method, w.model)),
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
        # A tuned run's run.json says whether it diverged (then there is nothing to score).
        run=lambda w: [] if w.run == "zeroshot" else run_json(w.model, w.run, w.train, w.seed),
    output:
        f"{R}/scores/{{model}}/{{run}}/{{train}}/seed{{seed}}.json",
    wildcard_constraints:
        run=one_of(METHODS + ["zeroshot"]),
        train=one_of(DOWNSTREAM + UPSTREAM),
    benchmark:
        f"{R}/benchmarks/score/{{model}}.{{run}}.{{train}}.seed{{seed}}.tsv"
    params:
        eval_sets=lambda w: eval_sets(config, w.run, w.train),
        datasets=lambda w: canonical({name: config["datasets"][name] for name in eval_sets(config, w.run, w.train)}),
        code=code_fingerprint("score"),
        tokenizer=cider_tokenizer(),  # CIDEr's caption tokenizer: java appearing or going rescores
    script:
        "../scripts/score.py"
