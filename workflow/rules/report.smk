FIGURES = paths.report_outputs(R, "{model}")


rule tradeoff:
    """E vs F of every method of one model (the trade-off plot beside its table)."""
    input:
        unpack(cells),
    output:
        report(
            TABLES["plot"],
            caption="../report/tradeoff.rst",
            category="Trade-off",
            labels={"model": "{model}", "file": "E vs F"},
        ),
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
    training loss of every cell, and every cell's costs and provenance."""
    input:
        unpack(figures_inputs),
    output:
        scores=report(
            FIGURES["scores"],
            caption="../report/scores.rst",
            category="Scores",
            labels={"model": "{model}"},
        ),
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
        made_from=made_from(figures_inputs),
    script:
        "../scripts/figures.py"
