FIGURES = paths.report_outputs(R, "{model}")


rule figures:
    """What only `snakemake --report` shows for one model: zero-shot vs tuned scores per dataset, the
    training loss of every cell, and every cell's costs and provenance."""
    input:
        cells=lambda w: [cell_path(w.model, m, d) for m in METHODS for d in DOWNSTREAM],
        runs=lambda w: sorted({run_json(w.model, m, d, s) for m in METHODS for d in DOWNSTREAM for s in SEEDS}),
    output:
        scores=report(FIGURES["scores"], caption="../report/scores.rst", category="Scores",
                      labels={"model": "{model}"}),
        loss=report(directory(FIGURES["loss"]), patterns=["{method}/{dataset}.png"],
                    caption="../report/loss.rst", category="Training loss",
                    labels={"model": "{model}", "method": "{method}", "dataset": "{dataset}"}),
        cells=report(FIGURES["cells"], caption="../report/cells.rst", category="Cells",
                     labels={"model": "{model}"}),
    benchmark:
        f"{R}/benchmarks/figures/{{model}}.tsv"
    params:
        seeds=SEEDS,
        code=code_fingerprint("report"),
    script:
        "../scripts/figures.py"
