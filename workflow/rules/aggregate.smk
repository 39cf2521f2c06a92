rule cell:
    """One table cell: a method on a downstream set, every seed, with E, F, O and their spread."""
    input:
        base_scores=lambda w: [PLAN.zeroshot_scores(w.model, seed) for seed in SEEDS],
        tuned_scores=lambda w: [
            PLAN.scores(w.model, w.method, w.dataset, seed) for seed in SEEDS
        ],
        runs=lambda w: [
            PLAN.run_json(w.model, w.method, w.dataset, seed) for seed in SEEDS
        ],
        base=lambda w: [
            path for seed in SEEDS for path in PLAN.base_input(w.model, seed)
        ],
        data=cell_data,
    output:
        PLAN.cell_path("{model}", "{method}", "{dataset}"),
    log:
        log("cell", "{model}.{method}.{dataset}"),
    benchmark:
        f"{R}/benchmarks/cell/{{model}}.{{method}}.{{dataset}}.tsv"
    conda:
        ENV
    params:
        job=lambda w: canonical(PLAN.cell_job(w.model, w.method, w.dataset)),
        base=lambda w: [PLAN.base_location(w.model, seed) for seed in SEEDS],
        code=code_fingerprint("aggregate"),
    script:
        "../scripts/cell.py"


TABLES = paths.table_outputs(R, "{model}")


rule tables:
    """The paper-style table (HTML, Markdown, CSV, LaTeX) and its provenance for one model."""
    input:
        cells=lambda w: PLAN.cell_paths(w.model),
    output:
        html=table_report(TABLES["html"], "table", "Tables", "table (HTML)"),
        md=table_report(TABLES["md"], "table", "Tables", "table (Markdown)"),
        csv=table_report(TABLES["csv"], "table", "Tables", "table (CSV)"),
        tex=table_report(TABLES["tex"], "table", "Tables", "table (LaTeX)"),
        provenance=table_report(
            TABLES["provenance"], "provenance", "Provenance", "table provenance (JSON)"
        ),
    log:
        log("tables", "{model}"),
    benchmark:
        f"{R}/benchmarks/tables/{{model}}.tsv"
    conda:
        ENV
    params:
        job=lambda w: canonical(PLAN.table_job(w.model)),
        code=code_fingerprint("aggregate"),
    script:
        "../scripts/tables.py"
