"""A model's E/F/O table from its cells, as Markdown, CSV, LaTeX and HTML."""

from __future__ import annotations

import html
import statistics
from pathlib import Path

import polars as pl

from .cells import FORMULAS, METRICS, O_TEXT, sample_std

# The same formulas typeset for the LaTeX caption ("base" = the zero-shot model), keyed like FORMULAS.
_FORMULAS_TEX = {
    FORMULAS["E"]: r"$E = A_{\mathrm{down}}^{\mathrm{tuned}} - A_{\mathrm{down}}^{\mathrm{base}}$",
    FORMULAS["F"]: r"$F = \frac{1}{|U|}\sum_{u \in U} (A_u^{\mathrm{tuned}} - A_u^{\mathrm{base}})$ "
                   r"over the upstream sets $U$",
    O_TEXT["sum"]: r"$O = E + F$",
    O_TEXT["mean"]: r"$O = (E + F)/2$",
}

# Columns of the CSV; the "mean" rows average the per-dataset rows.
_CSV_SCHEMA = {
    "method": pl.String,
    "dataset": pl.String,
    "E_mean": pl.Float64,
    "E_std": pl.Float64,
    "F_mean": pl.Float64,
    "F_std": pl.Float64,
    "O_mean": pl.Float64,
    "O_std": pl.Float64,
    "n_seeds": pl.Int64,
    "trainable_params": pl.Float64,
    "train_seconds": pl.Float64,
}
_AVERAGED = [c for c in _CSV_SCHEMA if c not in ("method", "dataset", "n_seeds")]
MEAN_GROUP = "mean"


def first_seen(values) -> list:
    return list(dict.fromkeys(values))


def _check_one_table(cells: list[dict]) -> None:
    if not cells:
        raise ValueError("no cells to tabulate")
    models = first_seen(c["model"] for c in cells)
    if len(models) > 1:
        raise ValueError(f"write_tables takes cells of one model, got {models}")
    if len(first_seen(tuple(sorted(c["formulas"].items())) for c in cells)) > 1:
        raise ValueError("cells were built with different O formulas")
    keys = [(c["method"], c["dataset"]) for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("more than one cell for the same method and dataset")


def _csv_row(method: str, dataset: str, cell: dict | None) -> dict:
    row = {"method": method, "dataset": dataset, "n_seeds": cell["n_seeds"] if cell else 0}
    mean, std = (cell["mean"], cell["std"]) if cell else (None, None)
    for m in METRICS:
        row[f"{m}_mean"] = mean[m] if mean else None
        row[f"{m}_std"] = std[m] if std else None
    for k in ("trainable_params", "train_seconds"):
        row[k] = mean[k] if mean else None
    return row


def results_frame(cells: list[dict]) -> pl.DataFrame:
    """Long frame: one row per method x dataset, then one "mean" row per method."""
    by_key = {(c["method"], c["dataset"]): c for c in cells}
    methods = first_seen(c["method"] for c in cells)
    datasets = first_seen(c["dataset"] for c in cells)
    rows = [_csv_row(m, d, by_key.get((m, d))) for m in methods for d in datasets]
    per_dataset = pl.DataFrame(rows, schema=_CSV_SCHEMA)

    # Averaging over a subset of datasets would not be comparable across methods,
    # so the mean is only given when every dataset has a result.
    complete = pl.col("E_mean").is_not_null().all()
    means = per_dataset.group_by("method", maintain_order=True).agg(
        pl.lit(MEAN_GROUP).alias("dataset"),
        *[pl.when(complete).then(pl.col(c).mean()).alias(c) for c in _AVERAGED],
    )
    over_seeds = {f"{m}_{stat}": pl.Float64 for m in METRICS for stat in ("mean", "std")}
    spread = pl.DataFrame([_over_seeds(m, [by_key.get((m, d)) for d in datasets]) for m in methods],
                          schema={"method": pl.String, **over_seeds, "n_seeds": pl.Int64})
    means = means.drop(list(over_seeds)).join(spread, on="method", how="left", maintain_order="left")
    return pl.concat([per_dataset, means.select(per_dataset.columns)])


def _over_seeds(method: str, cells: list[dict | None]) -> dict:
    """The Mean columns: each seed's mean over the sets, then their mean and std over the seeds that
    have a result on every set (averaging the per-set stds would understate the spread)."""
    complete = all(c is not None and c["mean"] for c in cells)
    seeds = [s for s in cells[0]["seeds"] if all("diverged" not in c["seeds"].get(s, {"diverged": True})
                                                  for c in cells)] if complete else []
    per_seed = {m: [statistics.fmean(c["seeds"][s][m] for c in cells) for s in seeds] for m in METRICS}
    return {"method": method, "n_seeds": len(seeds),
            **{f"{m}_mean": statistics.fmean(v) if v else None for m, v in per_seed.items()},
            **{f"{m}_std": sample_std(v) if v else None for m, v in per_seed.items()}}


def _footnotes(frame: pl.DataFrame, cells: list[dict]) -> dict[tuple[str, str], str]:
    """Why each "–" is there, keyed by (method, dataset or "mean"), in table order."""
    reasons = {(c["method"], c["dataset"]): c.get("missing_reason") for c in cells}
    notes = {}
    for method in first_seen(frame["method"]):
        rows = frame.filter(pl.col("method") == method)
        missing = rows.filter(pl.col("E_mean").is_null() & (pl.col("dataset") != MEAN_GROUP))
        for dataset in missing["dataset"]:
            notes[(method, dataset)] = f"{method} / {dataset}: {reasons.get((method, dataset)) or 'not run'}"
        if len(missing):
            absent = ", ".join(missing["dataset"])
            notes[(method, MEAN_GROUP)] = f"{method} / Mean: not averaged, missing {absent}"
    return notes


def _fmt(value: float) -> str:
    # Adding 0.0 turns a rounded -0.0 into 0.0.
    return f"{round(value, 1) + 0.0:.1f}"


def _table_body(frame: pl.DataFrame, notes: dict, style: dict) -> list[list[str]]:
    """Formatted rows: method name, then "mean ± std" per (dataset group, metric)."""
    groups = first_seen(frame["dataset"])
    lookup = {(r["method"], r["dataset"]): r for r in frame.iter_rows(named=True)}
    methods = first_seen(frame["method"])
    # Best = highest displayed mean in the column; ties are all bold.
    best = {
        (g, m): max(
            (_fmt(v) for v in frame.filter(pl.col("dataset") == g)[f"{m}_mean"].drop_nulls()),
            key=float,
            default=None,
        )
        for g in groups
        for m in METRICS
    }
    numbers = {key: i for i, key in enumerate(notes, start=1)}
    body = []
    for method in methods:
        row = [style["escape"](method)]
        for g in groups:
            r = lookup[(method, g)]
            for m in METRICS:
                if r[f"{m}_mean"] is None:
                    row.append(style["dash"] + style["mark"](numbers[(method, g)]))
                    continue
                mean = _fmt(r[f"{m}_mean"])
                text = mean.replace("-", style["minus"]) + style["pm"] + _fmt(r[f"{m}_std"])
                row.append(style["bold"](text) if mean == best[(g, m)] else text)
        body.append(row)
    return body


def _group_label(group: str) -> str:
    return "Mean" if group == MEAN_GROUP else group


_MD_STYLE = {
    "escape": lambda s: s.replace("|", r"\|"),
    "pm": " ± ",
    "minus": "-",
    "dash": "–",
    "mark": lambda n: f"[^{n}]",
    "bold": lambda s: f"**{s}**",
}


def _markdown(frame: pl.DataFrame, notes: dict, caption: str, formula_text: dict) -> str:
    header = ["Method"] + [
        f"{_group_label(g)} {m}" for g in first_seen(frame["dataset"]) for m in METRICS
    ]
    lines = [f"**{caption}**", ""]
    lines += [f"- `{formula_text[m]}`" for m in METRICS]
    lines += ["", "| " + " | ".join(_MD_STYLE["escape"](h) for h in header) + " |"]
    lines.append("|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in _table_body(frame, notes, _MD_STYLE)]
    lines += [""] + [f"[^{i}]: {text}" for i, text in enumerate(notes.values(), start=1)]
    return "\n".join(lines).rstrip() + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


_TEX_STYLE = {
    "escape": latex_escape,
    "pm": r" $\pm$ ",
    "minus": "$-$",  # a hyphen is not a minus sign in LaTeX text mode
    "dash": "--",
    "mark": lambda n: f"$^{{{n}}}$",
    "bold": lambda s: f"\\textbf{{{s}}}",
}


def _latex(frame: pl.DataFrame, notes: dict, caption: str, formula_text: dict) -> str:
    """A table float that compiles in any document loading booktabs and graphicx."""
    groups = first_seen(frame["dataset"])
    labels = [latex_escape(_group_label(g)) for g in groups]
    formulas_tex = "; ".join(_FORMULAS_TEX[formula_text[m]] for m in METRICS)
    full_caption = f"{latex_escape(caption)} {formulas_tex}. Best value per column in bold."
    spans = [(2 + 3 * i, 4 + 3 * i) for i in range(len(groups))]
    lines = [
        r"% Needs \usepackage{booktabs} and \usepackage{graphicx} in the preamble.",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{full_caption}}}",
        # As wide as the text, however many datasets: E/F/O per set makes wide tables.
        r"\resizebox{\linewidth}{!}{%",
        r"\begin{tabular}{l" + "ccc" * len(groups) + "}",
        r"\toprule",
        " & ".join([""] + [rf"\multicolumn{{3}}{{c}}{{{label}}}" for label in labels]) + r" \\",
        " ".join(rf"\cmidrule(lr){{{a}-{b}}}" for a, b in spans),
        " & ".join(["Method"] + ["$E$", "$F$", "$O$"] * len(groups)) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(r) + r" \\" for r in _table_body(frame, notes, _TEX_STYLE)]
    lines += [r"\bottomrule", r"\end{tabular}}"]
    if notes:
        lines.append(r"\par\smallskip\footnotesize")
        notes_tex = [f"$^{{{i}}}$ {latex_escape(text)}" for i, text in enumerate(notes.values(), start=1)]
        lines.append(" \\\\\n".join(notes_tex))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


_HTML_STYLE = {
    "escape": html.escape,
    "pm": " ± ",
    "minus": "−",
    "dash": "–",
    "mark": lambda n: f"<sup>{n}</sup>",
    "bold": lambda s: f"<b>{s}</b>",
}


def _html(frame: pl.DataFrame, notes: dict, caption: str, formula_text: dict) -> str:
    """A standalone page (the report shows it as is)."""
    groups = first_seen(frame["dataset"])
    head = "".join(f'<th colspan="3">{html.escape(_group_label(g))}</th>' for g in groups)
    sub = "".join(f"<th>{m}</th>" for m in METRICS) * len(groups)
    rows = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>\n"
                   for r in _table_body(frame, notes, _HTML_STYLE))
    formulas_html = "".join(f"<li><code>{html.escape(formula_text[m])}</code></li>" for m in METRICS)
    notes_html = "".join(f"<li>{html.escape(t)}</li>" for t in notes.values())
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(caption)}</title>\n"
            "<style>table{border-collapse:collapse}th,td{padding:2px 8px;text-align:center;"
            "border-bottom:1px solid #ccc}td:first-child{text-align:left}</style></head><body>\n"
            f"<p><b>{html.escape(caption)}</b></p><ul>{formulas_html}</ul>\n"
            f'<table class="efo"><thead><tr><th rowspan="2">Method</th>{head}</tr><tr>{sub}</tr></thead>\n'
            f"<tbody>\n{rows}</tbody></table>\n<ol>{notes_html}</ol>\n<p>Best value per column in bold.</p>"
            "</body></html>\n")


def write_tables(cells: list[dict], out_prefix: Path, caption: str) -> dict[str, Path]:
    """Write the E/F/O table of one model as .md, .csv, .tex and .html next to `out_prefix`."""
    _check_one_table(cells)
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    frame = results_frame(cells)
    notes = _footnotes(frame, cells)
    formula_text = cells[0]["formulas"]
    paths = {ext: out_prefix.with_suffix(f".{ext}") for ext in ("md", "csv", "tex", "html")}
    paths["md"].write_text(_markdown(frame, notes, caption, formula_text), encoding="utf-8")
    frame.write_csv(paths["csv"])
    paths["tex"].write_text(_latex(frame, notes, caption, formula_text), encoding="utf-8")
    paths["html"].write_text(_html(frame, notes, caption, formula_text), encoding="utf-8")
    return paths
