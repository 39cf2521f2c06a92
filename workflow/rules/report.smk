FIGURES = paths.report_outputs(R, "{model}")


rule tradeoff:
    """E vs F of every method of one model (the trade-off plot beside its table)."""
    input:
        unpack(cells),
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
        made_from=made_from(cells),
    script:
        "../scripts/tradeoff.py"


rule figures:
    """What only `snakemake --report` shows for one model: zero-shot vs tuned scores per dataset, the
    training loss per downstream set and per cell, every cell's costs and provenance, and a sample
    of every cell's answers."""
    input:
        unpack(figures_inputs),
    output:
        scores=report(
            FIGURES["scores"],
            caption="../report/scores.rst",
            category="Scores",
            labels={"model": "{model}"},
        ),
        loss_sets=report(
            directory(FIGURES["loss_sets"]),
            patterns=["{dataset}.png"],
            caption="../report/loss_by_set.rst",
            category="Training loss",
            subcategory="per downstream set",
            labels={"model": "{model}", "dataset": "{dataset}"},
        ),
        scores_svg=FIGURES["scores_svg"],
        loss=report(
            directory(FIGURES["loss"]),
            patterns=["{method}/{dataset}.png"],
            caption="../report/loss.rst",
            category="Training loss",
            subcategory="per cell",
            labels={"model": "{model}", "method": "{method}", "dataset": "{dataset}"},
        ),
        cells=report(
            FIGURES["cells"],
            caption="../report/cells.rst",
            category="Cells",
            labels={"model": "{model}"},
        ),
        predictions=report(
            FIGURES["predictions"],
            caption="../report/predictions.rst",
            category="Predictions",
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
        made_from=made_from(figures_inputs),
    script:
        "../scripts/figures.py"


rule landing:
    """The report's front page: every model's table, trade-off plot and training loss per
    downstream set (the Snakefile's `report:` once it exists)."""
    input:
        tables=[paths.table_outputs(R, m)["html"] for m in MODELS],
        plots=[paths.table_outputs(R, m)["plot"] for m in MODELS],
        loss=[paths.report_outputs(R, m)["loss_sets"] for m in MODELS],
    output:
        paths.landing(R),
    log:
        log("landing", PLAN.study),
    conda:
        ENV
    params:
        job=canonical(PLAN.landing_job()),
        code=code_fingerprint("report"),
    script:
        "../scripts/landing.py"
