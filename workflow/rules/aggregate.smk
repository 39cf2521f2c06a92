def cell_data(w):
    """Every dataset file a cell's runs read: hashed into its provenance."""
    return [data(w.dataset, "train")] + replay_inputs(w) + [data(name, "test") for name in [w.dataset] + UPSTREAM]


rule cell:
    """One table cell: a method on a downstream set, every seed, with E, F, O and their spread."""
    input:
        base_scores=lambda w: [p for seed in SEEDS for p in zeroshot_scores(w.model, seed, [w.dataset] + UPSTREAM)],
        tuned_scores=expand(f"{R}/scores/{{{{model}}}}/{{{{method}}}}/{{{{dataset}}}}/seed{{seed}}.json", seed=SEEDS),
        runs=lambda w: [run_json(w.model, w.method, w.dataset, s) for s in SEEDS],
        base=lambda w: [path for seed in SEEDS for path in base_input(w.model, seed)],
        data=cell_data,
    output:
        cell_path("{model}", "{method}", "{dataset}"),
    benchmark:
        f"{R}/benchmarks/cell/{{model}}.{{method}}.{{dataset}}.tsv"
    params:
        upstream=UPSTREAM,
        seeds=SEEDS,
        base=lambda w: [base_location(w.model, seed) for seed in SEEDS],
        aggregation=canonical(config["aggregation"]),
        code=code_fingerprint("aggregate"),
    script:
        "../scripts/cell.py"


TABLES = paths.table_outputs(R, "{model}")


def table_report(path, caption, category, kind):
    return report(path, caption=f"../report/{caption}.rst", category=category,
                  labels={"model": "{model}", "file": kind})


rule tables:
    """The paper-style table (HTML, Markdown, CSV, LaTeX), its provenance and the E-vs-F trade-off plot for one model."""
    input:
        cells=lambda w: [cell_path(w.model, m, d) for m in METHODS for d in DOWNSTREAM],
    output:
        html=table_report(TABLES["html"], "table", "Tables", "table (HTML)"),
        md=table_report(TABLES["md"], "table", "Tables", "table (Markdown)"),
        csv=table_report(TABLES["csv"], "table", "Tables", "table (CSV)"),
        tex=table_report(TABLES["tex"], "table", "Tables", "table (LaTeX)"),
        provenance=table_report(TABLES["provenance"], "provenance", "Provenance", "table provenance (JSON)"),
        plot=table_report(TABLES["plot"], "tradeoff", "Trade-off", "E vs F"),
    benchmark:
        f"{R}/benchmarks/tables/{{model}}.tsv"
    params:
        seeds=SEEDS,
        upstream=UPSTREAM,
        code=code_fingerprint("aggregate"),
    script:
        "../scripts/tables.py"
