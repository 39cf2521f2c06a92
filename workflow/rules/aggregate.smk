rule cell:
    """One table cell: a method on a downstream set, every seed, with E, F, O and their spread."""
    input:
        base_scores=lambda w: [p for seed in SEEDS for p in zeroshot_scores(w.model, seed, [w.dataset] + UPSTREAM)],
        tuned_scores=expand(f"{R}/scores/{{{{model}}}}/{{{{method}}}}/{{{{dataset}}}}/seed{{seed}}.json", seed=SEEDS),
        runs=expand(run_json("{{model}}", "{{method}}", "{{dataset}}", "{seed}"), seed=SEEDS),
    output:
        cell_path("{model}", "{method}", "{dataset}"),
    benchmark:
        f"{R}/benchmarks/cell/{{model}}.{{method}}.{{dataset}}.tsv"
    params:
        upstream=UPSTREAM,
        seeds=SEEDS,
        aggregation=canonical(config["aggregation"]),
        code=code_fingerprint("aggregate"),
    script:
        "../scripts/cell.py"


rule tables:
    """The paper-style table (Markdown, CSV, LaTeX) and the E-vs-F trade-off plot for one model."""
    input:
        cells=lambda w: [cell_path(w.model, m, d) for m in METHODS for d in DOWNSTREAM],
    output:
        md=f"{R}/tables/{{model}}.md",
        csv=f"{R}/tables/{{model}}.csv",
        tex=f"{R}/tables/{{model}}.tex",
        plot=f"{R}/plots/{{model}}_tradeoff.png",
    benchmark:
        f"{R}/benchmarks/tables/{{model}}.tsv"
    params:
        seeds=SEEDS,
        upstream=UPSTREAM,
        code=code_fingerprint("aggregate"),
    script:
        "../scripts/tables.py"
