rule cell:
    """One table cell: a method on a downstream set, every seed, with E, F, O and their spread."""
    input:
        base_scores=expand(f"{R}/scores/{{{{model}}}}/zeroshot/all/seed{{seed}}.json", seed=SEEDS),
        tuned_scores=expand(f"{R}/scores/{{{{model}}}}/{{{{method}}}}/{{{{dataset}}}}/seed{{seed}}.json", seed=SEEDS),
        tuned=lambda w: [tune_dir(w.model, tune_method(config, w.method), w.dataset, s) for s in SEEDS],
    output:
        cell_path("{model}", "{method}", "{dataset}"),
    benchmark:
        f"{R}/benchmarks/cell/{{model}}.{{method}}.{{dataset}}.tsv"
    params:
        upstream=UPSTREAM,
        seeds=SEEDS,
        aggregation=canonical(config["aggregation"]),
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
    script:
        "../scripts/tables.py"
