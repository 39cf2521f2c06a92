"""Aggregate per-seed scores into E/F/O cells, per-model tables and a trade-off plot.

E is the gain on the tuned (downstream) dataset, F the mean change on the upstream
datasets (negative = forgetting), O combines both. All values are in points on each
dataset's own reported scale.
"""

from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Callable

import polars as pl

from . import report
from .config import sweep_entry

O_FORMULAS: dict[str, Callable[[float, float], float]] = {
    "sum": lambda e, f: e + f,
    "mean": lambda e, f: (e + f) / 2,
}
_O_TEXT = {"sum": "O = E + F", "mean": "O = (E + F) / 2"}

FORMULAS: dict[str, str] = {
    "E": "E = A_down(tuned) - A_down(zero-shot)",
    "F": "F = mean_u [A_u(tuned) - A_u(zero-shot)] over upstream sets u",
    "O": _O_TEXT["sum"],
}

# The same formulas typeset for the LaTeX caption ("base" = the zero-shot model), keyed like FORMULAS.
_FORMULAS_TEX = {
    FORMULAS["E"]: r"$E = A_{\mathrm{down}}^{\mathrm{tuned}} - A_{\mathrm{down}}^{\mathrm{base}}$",
    FORMULAS["F"]: r"$F = \frac{1}{|U|}\sum_{u \in U} (A_u^{\mathrm{tuned}} - A_u^{\mathrm{base}})$ "
                   r"over the upstream sets $U$",
    _O_TEXT["sum"]: r"$O = E + F$",
    _O_TEXT["mean"]: r"$O = (E + F)/2$",
}
_RUN_KEYS = ("trainable_params", "total_params", "train_seconds", "peak_memory_mb")
_METRICS = ("E", "F", "O")
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


# --------------------------------------------------------------------------- E/F/O


def _check_o_formula(o_formula: str) -> None:
    if o_formula not in O_FORMULAS:
        raise ValueError(f"unknown o_formula {o_formula!r}; choose from {sorted(O_FORMULAS)}")


def formulas(o_formula: str = "sum") -> dict[str, str]:
    """The E/F/O formula strings, with O matching `o_formula`."""
    _check_o_formula(o_formula)
    return {**FORMULAS, "O": _O_TEXT[o_formula]}


def primary_score(scores: dict, dataset: str) -> float:
    """The primary metric of `dataset` in a scores JSON, times the dataset's `scale` (the points that
    enter E, F and O: MME's 0-2800 total with scale 100/2800 enters as % of its maximum)."""
    if dataset not in scores:
        raise KeyError(f"no scores for dataset {dataset!r} (have: {sorted(scores)})")
    entry = scores[dataset]
    primary = entry.get("primary")
    if primary not in entry.get("scores", {}):
        raise KeyError(f"dataset {dataset!r}: primary metric {primary!r} missing from its scores")
    return float(entry["scores"][primary]) * float(entry.get("scale", 1.0))


def _before_after(base_scores: dict, tuned_scores: dict, dataset: str) -> dict:
    return {
        "before": primary_score(base_scores, dataset),
        "after": primary_score(tuned_scores, dataset),
    }


def seed_result(
    base_scores: dict,
    tuned_scores: dict,
    run: dict,
    downstream: str,
    upstream: list[str],
    o_formula: str = "sum",
) -> dict:
    """E, F and O of one seed, with the raw scores and run costs they came from."""
    if not upstream:
        raise ValueError("F needs at least one upstream dataset")
    _check_o_formula(o_formula)
    down = _before_after(base_scores, tuned_scores, downstream)
    ups = {u: _before_after(base_scores, tuned_scores, u) for u in upstream}
    e = down["after"] - down["before"]
    f = statistics.fmean(s["after"] - s["before"] for s in ups.values())
    return {
        "downstream": down,
        "upstream": ups,
        "E": e,
        "F": f,
        "O": O_FORMULAS[o_formula](e, f),
        **{k: run[k] for k in _RUN_KEYS},
    }


# --------------------------------------------------------------------------- cells


def _std(values: list[float]) -> float:
    # Sample std (ddof=1); a single seed has no spread to report.
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _summarise(results: list[dict], upstream: list[str], reduce: Callable) -> dict:
    """Apply `reduce` to each aggregated quantity across seed results."""

    def over(get: Callable[[dict], float]) -> float:
        return reduce([float(get(r)) for r in results])

    def pair(get: Callable[[dict], dict]) -> dict:
        return {k: over(lambda r: get(r)[k]) for k in ("before", "after")}

    return {
        **{m: over(lambda r: r[m]) for m in _METRICS},
        "downstream": pair(lambda r: r["downstream"]),
        "upstream": {u: pair(lambda r: r["upstream"][u]) for u in upstream},
        **{k: over(lambda r: r[k]) for k in ("trainable_params", "train_seconds", "peak_memory_mb")},
    }


def _divergence_reason(seeds: dict) -> str:
    parts = [
        f"seed {s}: diverged at step {r['diverged'].get('step')} ({r['diverged'].get('reason')})"
        for s, r in seeds.items()
    ]
    return "all seeds diverged; " + "; ".join(parts) if parts else "no seeds were run"


def build_cell(
    model: str,
    method: str,
    dataset: str,
    upstream: list[str],
    per_seed: dict[int, tuple[dict, dict, dict]],
    o_formula: str = "sum",
) -> dict:
    """One table cell (JSON-serialisable): per-seed results plus mean/std over non-diverged seeds."""
    seeds: dict[str, dict] = {}
    ok: list[dict] = []
    for seed in sorted(per_seed):
        base_scores, tuned_scores, run = per_seed[seed]
        if run.get("diverged") is not None:
            # A diverged run has no meaningful scores; keep why, leave it out of the stats.
            seeds[str(seed)] = {"diverged": run["diverged"]}
            continue
        result = seed_result(base_scores, tuned_scores, run, dataset, upstream, o_formula)
        seeds[str(seed)] = result
        ok.append(result)

    cell = {
        "model": model,
        "method": method,
        "dataset": dataset,
        "upstream": list(upstream),
        "formulas": formulas(o_formula),
        "seeds": seeds,
        "mean": _summarise(ok, upstream, statistics.fmean) if ok else None,
        "std": _summarise(ok, upstream, _std) if ok else None,
        "n_seeds": len(ok),
    }
    if not ok:
        cell["missing_reason"] = _divergence_reason(seeds)
    return cell


# --------------------------------------------------------------------------- tables


def _first_seen(values) -> list:
    return list(dict.fromkeys(values))


def _check_one_table(cells: list[dict]) -> None:
    if not cells:
        raise ValueError("no cells to tabulate")
    models = _first_seen(c["model"] for c in cells)
    if len(models) > 1:
        raise ValueError(f"write_tables takes cells of one model, got {models}")
    if len(_first_seen(tuple(sorted(c["formulas"].items())) for c in cells)) > 1:
        raise ValueError("cells were built with different O formulas")
    keys = [(c["method"], c["dataset"]) for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("more than one cell for the same method and dataset")


def _csv_row(method: str, dataset: str, cell: dict | None) -> dict:
    row = {"method": method, "dataset": dataset, "n_seeds": cell["n_seeds"] if cell else 0}
    mean, std = (cell["mean"], cell["std"]) if cell else (None, None)
    for m in _METRICS:
        row[f"{m}_mean"] = mean[m] if mean else None
        row[f"{m}_std"] = std[m] if std else None
    for k in ("trainable_params", "train_seconds"):
        row[k] = mean[k] if mean else None
    return row


def _results_frame(cells: list[dict]) -> pl.DataFrame:
    """Long frame: one row per method x dataset, then one "mean" row per method."""
    by_key = {(c["method"], c["dataset"]): c for c in cells}
    methods = _first_seen(c["method"] for c in cells)
    datasets = _first_seen(c["dataset"] for c in cells)
    rows = [_csv_row(m, d, by_key.get((m, d))) for m in methods for d in datasets]
    per_dataset = pl.DataFrame(rows, schema=_CSV_SCHEMA)

    # Averaging over a subset of datasets would not be comparable across methods,
    # so the mean is only given when every dataset has a result.
    complete = pl.col("E_mean").is_not_null().all()
    means = per_dataset.group_by("method", maintain_order=True).agg(
        pl.lit(MEAN_GROUP).alias("dataset"),
        *[pl.when(complete).then(pl.col(c).mean()).alias(c) for c in _AVERAGED],
        pl.col("n_seeds").min(),
    )
    return pl.concat([per_dataset, means.select(per_dataset.columns)])


def _footnotes(frame: pl.DataFrame, cells: list[dict]) -> dict[tuple[str, str], str]:
    """Why each "–" is there, keyed by (method, dataset or "mean"), in table order."""
    reasons = {(c["method"], c["dataset"]): c.get("missing_reason") for c in cells}
    notes = {}
    for method in _first_seen(frame["method"]):
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
    groups = _first_seen(frame["dataset"])
    lookup = {(r["method"], r["dataset"]): r for r in frame.iter_rows(named=True)}
    methods = _first_seen(frame["method"])
    # Best = highest displayed mean in the column; ties are all bold.
    best = {
        (g, m): max(
            (_fmt(v) for v in frame.filter(pl.col("dataset") == g)[f"{m}_mean"].drop_nulls()),
            key=float,
            default=None,
        )
        for g in groups
        for m in _METRICS
    }
    numbers = {key: i for i, key in enumerate(notes, start=1)}
    body = []
    for method in methods:
        row = [style["escape"](method)]
        for g in groups:
            r = lookup[(method, g)]
            for m in _METRICS:
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
        f"{_group_label(g)} {m}" for g in _first_seen(frame["dataset"]) for m in _METRICS
    ]
    lines = [f"**{caption}**", ""]
    lines += [f"- `{formula_text[m]}`" for m in _METRICS]
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
    groups = _first_seen(frame["dataset"])
    labels = [latex_escape(_group_label(g)) for g in groups]
    formulas_tex = "; ".join(_FORMULAS_TEX[formula_text[m]] for m in _METRICS)
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
    groups = _first_seen(frame["dataset"])
    head = "".join(f'<th colspan="3">{html.escape(_group_label(g))}</th>' for g in groups)
    sub = "".join(f"<th>{m}</th>" for m in _METRICS) * len(groups)
    rows = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>\n"
                   for r in _table_body(frame, notes, _HTML_STYLE))
    formulas_html = "".join(f"<li><code>{html.escape(formula_text[m])}</code></li>" for m in _METRICS)
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
    frame = _results_frame(cells)
    notes = _footnotes(frame, cells)
    formula_text = cells[0]["formulas"]
    paths = {ext: out_prefix.with_suffix(f".{ext}") for ext in ("md", "csv", "tex", "html")}
    paths["md"].write_text(_markdown(frame, notes, caption, formula_text), encoding="utf-8")
    frame.write_csv(paths["csv"])
    paths["tex"].write_text(_latex(frame, notes, caption, formula_text), encoding="utf-8")
    paths["html"].write_text(_html(frame, notes, caption, formula_text), encoding="utf-8")
    return paths


# --------------------------------------------------------------------------- plot


def plot_tradeoff(cells: list[dict], out_png: Path, title: str) -> Path:
    """E vs F per method (see `tradeoff_figure`) as a PNG."""
    return report.save(tradeoff_figure(cells, title), out_png)


def tradeoff_figure(cells: list[dict], title: str):
    """E vs F per method: a labelled marker at the mean over datasets, faded ones per dataset. The
    methods of one sweep (<entry>@<value>) share a colour and a line joins them in sweep order."""
    frame = _results_frame(cells)
    fig = report.figure(6.4, 4.8)
    ax = fig.add_subplot()
    methods = _first_seen(frame["method"])
    entries = _first_seen(sweep_entry(m) for m in methods)
    curves: dict[str, list[tuple[float, float]]] = {}
    for method in methods:
        color = f"C{entries.index(sweep_entry(method)) % 10}"
        rows = frame.filter((pl.col("method") == method) & pl.col("E_mean").is_not_null())
        per_dataset = rows.filter(pl.col("dataset") != MEAN_GROUP)
        ax.scatter(per_dataset["E_mean"], per_dataset["F_mean"], s=14, color=color, alpha=0.3)
        overall = rows.filter(pl.col("dataset") == MEAN_GROUP)
        if overall.is_empty():
            # No comparable mean (see the table footnotes); label its datasets so it stays visible.
            for d in per_dataset.iter_rows(named=True):
                ax.annotate(
                    f"{method} ({d['dataset']} only)", (d["E_mean"], d["F_mean"]),
                    textcoords="offset points", xytext=(5, -10), fontsize=7, color=color,
                )
            continue
        r = overall.row(0, named=True)
        ax.errorbar(
            r["E_mean"], r["F_mean"], xerr=r["E_std"], yerr=r["F_std"],
            fmt="o", color=color, markersize=7, capsize=3,
        )
        ax.annotate(method, (r["E_mean"], r["F_mean"]), textcoords="offset points", xytext=(6, 6), fontsize=9)
        curves.setdefault(sweep_entry(method), []).append((r["E_mean"], r["F_mean"]))
    for entry, points in curves.items():
        if len(points) > 1:
            xs, ys = zip(*points)
            ax.plot(xs, ys, "-", color=f"C{entries.index(entry) % 10}", linewidth=1.2, alpha=0.8)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("E: specialization gain (points)")
    ax.set_ylabel("F: upstream change (points, < 0 = forgetting)")
    ax.set_title(title)
    return fig
