FIGURES = paths.report_outputs(R, "{model}")


rule tradeoff:
    """E vs F of every method of one model (the trade-off plot beside its table)."""
    input:
        cells=lambda w: PLAN.cell_paths(w.model),
    output:
        png=report(
            TABLES["plot"],
            caption="../report/tradeoff.rst",
            category="Trade-off",
            labels={"model": "{model}", "file": "E vs F"},
        ),
        svg=TABLES["plot_svg"],
    log:
        log("tradeoff", "{model}"),
    conda:
        ENV
    params:
        title=lambda w: PLAN.title(w.model),
        code=code_fingerprint("report"),
    script:
        "../scripts/tradeoff.py"


rule figures:
    """What only `snakemake --report` shows for one model: zero-shot vs tuned scores per dataset, the
    training loss of every cell, and every cell's costs and provenance."""
    input:
        cells=lambda w: PLAN.cell_paths(w.model),
        runs=lambda w: sorted(
            {
                PLAN.run_json(w.model, m, d, s)
                for m in METHODS
                for d in DOWNSTREAM
                for s in SEEDS
            }
        ),
    output:
        scores=report(
            FIGURES["scores"],
            caption="../report/scores.rst",
            category="Scores",
            labels={"model": "{model}"},
        ),
        scores_svg=FIGURES["scores_svg"],
        loss=report(
            directory(FIGURES["loss"]),
            patterns=["{method}/{dataset}.png"],
            caption="../report/loss.rst",
            category="Training loss",
            labels={"model": "{model}", "method": "{method}", "dataset": "{dataset}"},
        ),
        cells=report(
            FIGURES["cells"],
            caption="../report/cells.rst",
            category="Cells",
            labels={"model": "{model}"},
        ),
    log:
        log("figures", "{model}"),
    benchmark:
        f"{R}/benchmarks/figures/{{model}}.tsv"
    conda:
        ENV
    params:
        job=lambda w: canonical(PLAN.figures_job(w.model)),
        code=code_fingerprint("report"),
    script:
        "../scripts/figures.py"
