"""A model's E/F/O table from its cells, as Markdown, CSV, LaTeX and HTML."""

from __future__ import annotations

import html
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from . import intervals
from .cells import FORMULAS, METRICS, NORMALISE_TEXT, O_TEXT, resampled_of, sample_std

# The same formulas typeset for the LaTeX caption ("base" = the zero-shot model), keyed like FORMULAS.
_FORMULAS_TEX = {
    FORMULAS["E"]: r"$E = A_{\mathrm{down}}^{\mathrm{tuned}} - A_{\mathrm{down}}^{\mathrm{base}}$",
    FORMULAS["F"]: r"$F = \frac{1}{|U|}\sum_{u \in U} (A_u^{\mathrm{tuned}} - A_u^{\mathrm{base}})$ "
                   r"over the upstream sets $U$",
    O_TEXT["sum"]: r"$O = E + F$",
    O_TEXT["mean"]: r"$O = (E + F)/2$",
}

# Columns of the CSV: per metric its mean, interval, std over seeds, and whether it is bold (the best
# or not significantly worse: the tie rule); the "mean" rows hold the Mean columns.
_CSV_SCHEMA = {
    "method": pl.String,
    "dataset": pl.String,
    **{f"{m}_{part}": kind for m in METRICS
       for part, kind in (("mean", pl.Float64), ("lo", pl.Float64), ("hi", pl.Float64), ("std", pl.Float64),
                          ("tied_best", pl.Boolean))},
    "n_seeds": pl.Int64,
    "trainable_params": pl.Float64,
    "train_seconds": pl.Float64,
}
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


@dataclass(frozen=True)
class Statistics:
    """How a table's cells were resampled and normalised, as they record it (all alike)."""

    level: float = 0.95
    seed: int = 0
    normalise: str = "none"

    @classmethod
    def of(cls, cells: list[dict]) -> Statistics:
        found = first_seen((c["interval"]["level"], c["interval"]["seed"], c["normalise"]) for c in cells
                           if c.get("interval"))
        if len(found) > 1:
            raise ValueError(f"cells were built with different interval levels, seeds or normalisations: {found}")
        return cls(*found[0]) if found else cls()


@dataclass(frozen=True)
class PerSeed:
    """One row x column group's E, F and O per seed and on each resample (tunebench.results.intervals)."""

    seeds: list[str]
    values: dict[str, np.ndarray]  # metric -> (seeds,)
    items: dict[str, np.ndarray]  # metric -> (seeds x resamples)

    @classmethod
    def of_cell(cls, cell: dict | None) -> PerSeed | None:
        if not cell or not cell["mean"]:
            return None
        seeds = cell["resampled"]["seeds"]
        parts = {m: resampled_of(cell, m, seeds) for m in METRICS}
        return cls(seeds, {m: v for m, (v, _) in parts.items()}, {m: i for m, (_, i) in parts.items()})

    @classmethod
    def mean_of(cls, rows: list[PerSeed | None]) -> PerSeed | None:
        """The Mean columns: per seed, the mean over the sets (of the seeds with a result on every set)."""
        if not rows or any(r is None for r in rows):
            return None
        seeds = [s for s in rows[0].seeds if all(s in r.seeds for r in rows)]
        if not seeds:
            return None
        on = [r.on(seeds) for r in rows]
        return cls(seeds, {m: np.mean([r.values[m] for r in on], axis=0) for m in METRICS},
                   {m: np.mean([r.items[m] for r in on], axis=0) for m in METRICS})

    def on(self, seeds: list[str]) -> PerSeed:
        index = [self.seeds.index(s) for s in seeds]
        return PerSeed(seeds, {m: v[index] for m, v in self.values.items()},
                       {m: v[index] for m, v in self.items.items()})

    def minus(self, other: PerSeed) -> PerSeed | None:
        """The paired difference, over the seeds both have."""
        seeds = [s for s in self.seeds if s in other.seeds]
        if not seeds:
            return None
        a, b = self.on(seeds), other.on(seeds)
        return PerSeed(seeds, {m: a.values[m] - b.values[m] for m in METRICS},
                       {m: a.items[m] - b.items[m] for m in METRICS})

    def estimate(self, metric: str, stats: Statistics) -> intervals.Estimate:
        return intervals.interval(self.values[metric], self.items[metric], stats.level, stats.seed)


def per_seed_rows(cells: list[dict]) -> dict[tuple[str, str], PerSeed | None]:
    """Every (method, dataset or "mean") of the table, per seed and resampled."""
    by_key = {(c["method"], c["dataset"]): c for c in cells}
    methods, datasets = first_seen(c["method"] for c in cells), first_seen(c["dataset"] for c in cells)
    rows = {(m, d): PerSeed.of_cell(by_key.get((m, d))) for m in methods for d in datasets}
    rows.update({(m, MEAN_GROUP): PerSeed.mean_of([rows[(m, d)] for d in datasets]) for m in methods})
    return rows


def tied_best(rows: dict[tuple[str, str], PerSeed | None], group: str, metric: str, stats: Statistics) -> set[str]:
    """The tie rule: the method with the best mean in the column and every method whose paired
    difference from it has an interval (at the cells' level, on the same resamples) reaching 0."""
    column = {m: r for (m, g), r in rows.items() if g == group and r is not None}
    if not column:
        return set()
    best = max(column, key=lambda m: column[m].values[metric].mean())
    tied = {best}
    for method, row in column.items():
        diff = column[best].minus(row)
        if diff is not None and method != best and diff.estimate(metric, stats).lo <= 0:
            tied.add(method)
    return tied


def results_frame(cells: list[dict]) -> pl.DataFrame:
    """Long frame: one row per method x dataset, then one "mean" row per method (the Mean columns:
    each seed's mean over the sets, then their mean, interval and std over the seeds that have a
    result on every set; averaging the per-set stds would understate the spread)."""
    stats = Statistics.of(cells)
    by_key = {(c["method"], c["dataset"]): c for c in cells}
    methods, datasets = first_seen(c["method"] for c in cells), first_seen(c["dataset"] for c in cells)
    rows = per_seed_rows(cells)
    bold = {(g, m): tied_best(rows, g, m, stats) for g in datasets + [MEAN_GROUP] for m in METRICS}
    records = []
    for method in methods:
        for group in datasets + [MEAN_GROUP]:
            row = rows[(method, group)]
            record = {"method": method, "dataset": group, "n_seeds": len(row.seeds) if row else 0}
            if row:  # else the row stays empty: a "–" with its footnote
                costs = [by_key[(method, d)]["mean"] for d in (datasets if group == MEAN_GROUP else [group])]
                record |= {k: statistics.fmean(c[k] for c in costs) for k in ("trainable_params", "train_seconds")}
                for m in METRICS:
                    record |= _metric_columns(m, row, by_key.get((method, group)), stats, method in bold[(group, m)])
            records.append(record)
    return pl.DataFrame(records, schema=_CSV_SCHEMA)


def _metric_columns(metric: str, row: PerSeed, cell: dict | None, stats: Statistics, tied: bool) -> dict:
    # A set's column shows its cell's own interval; the Mean columns' are computed here.
    estimate = (intervals.Estimate(cell["mean"][metric], *cell["interval"][metric]) if cell
                else row.estimate(metric, stats))
    return {f"{metric}_mean": estimate.mean, f"{metric}_lo": estimate.lo, f"{metric}_hi": estimate.hi,
            f"{metric}_std": sample_std(list(row.values[metric])), f"{metric}_tied_best": tied}


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
        elif rows.filter(pl.col("dataset") == MEAN_GROUP)["E_mean"].is_null().all():
            notes[(method, MEAN_GROUP)] = f"{method} / Mean: no seed has a result on every set"
    return notes


def _fmt(value: float) -> str:
    # Adding 0.0 turns a rounded -0.0 into 0.0.
    return f"{round(value, 1) + 0.0:.1f}"


def _every_column(group: str, metric: str) -> bool:
    return True


def _table_body(frame: pl.DataFrame, notes: dict, style: dict, keep=_every_column) -> list[list[str]]:
    """Formatted rows: method name, then "mean [lo, hi]" per (dataset group, metric) that `keep`s, bold
    by the tie rule."""
    groups = first_seen(frame["dataset"])
    lookup = {(r["method"], r["dataset"]): r for r in frame.iter_rows(named=True)}
    numbers = {key: i for i, key in enumerate(notes, start=1)}

    def number(value: float) -> str:
        return _fmt(value).replace("-", style["minus"])

    body = []
    for method in first_seen(frame["method"]):
        row = [style["escape"](method)]
        for g in groups:
            r = lookup[(method, g)]
            for m in (m for m in METRICS if keep(g, m)):
                if r[f"{m}_mean"] is None:
                    row.append(style["dash"] + style["mark"](numbers[(method, g)]))
                    continue
                text = number(r[f"{m}_mean"]) + style["interval"](number(r[f"{m}_lo"]), number(r[f"{m}_hi"]))
                row.append(style["bold"](text) if r[f"{m}_tied_best"] else text)
        body.append(row)
    return body


def percent(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def _test_sets(cells: list[dict], stats: Statistics) -> list[str]:
    """Each set's test size and the smallest difference between two methods' scores it detects; a
    warning for each set whose methods' scores span less than that."""
    done = [c for c in cells if c.get("test_size")]
    if not done:
        return []
    described, warnings = {"downstream": [], "upstream": []}, []
    roles = [("downstream", d, [c for c in done if c["dataset"] == d], lambda c: c["mean"]["downstream"]["after"])
             for d in first_seen(c["dataset"] for c in done)]
    roles += [("upstream", u, done, lambda c, u=u: c["mean"]["upstream"][u]["after"]) for u in done[0]["upstream"]]
    for role, name, members, after in roles:
        n = members[0]["test_size"][name]
        detects = intervals.detectable(max(max(c["sampling_se"][name].values()) for c in members), stats.level)
        # No spread: every score on the set is the same on every resample (all right, or all wrong).
        described[role].append(f"{name} {n:,} ({detects:.1f})" if detects else f"{name} {n:,} (no spread)")
        spread = max(map(after, members)) - min(map(after, members))
        if len(first_seen(c["method"] for c in members)) > 1 and spread < detects:
            warnings.append(f"Warning: {name} ({n:,} items) is too small to separate the methods: their scores on "
                            f"it span {spread:.1f} points, less than the {detects:.1f} it detects.")
    sizes = (f"Test sizes, and in brackets the smallest difference between two methods' scores each detects "
             f"({percent(stats.level)} level, {percent(intervals.POWER)} power; points of its primary metric): "
             f"downstream {', '.join(described['downstream'])}; upstream {', '.join(described['upstream'])}.")
    return [sizes, *warnings]


def seeds_note(cells: list[dict]) -> str | None:
    """How many seeds would separate the two best methods on Mean O at the cells' interval level, from
    the seed-to-seed spread of their difference (tunebench.results.intervals.seeds_needed)."""
    stats = Statistics.of(cells)
    means = {m: r for (m, g), r in per_seed_rows(cells).items() if g == MEAN_GROUP and r is not None}
    if len(means) < 2:
        return None
    first, second = sorted(means, key=lambda m: -means[m].values["O"].mean())[:2]
    diff = means[first].minus(means[second])
    if diff is None:
        return None
    need = intervals.seeds_needed(diff.values["O"], diff.items["O"], stats.level)
    pair = (f"the two best methods on Mean O, {first} ({means[first].values['O'].mean():.1f}) and {second} "
            f"({means[second].values['O'].mean():.1f})")
    if need.seeds is None:
        return f"Seeds: separating {pair}, at {percent(stats.level)}: {need.why}."
    return (f"Seeds: separating {pair}, at {percent(stats.level)} with {percent(intervals.POWER)} power takes "
            f"about {need.seeds} seeds (their difference has a seed-to-seed standard deviation of "
            f"{need.seed_sd:.1f}; {len(diff.seeds)} ran).")


def statistical_notes(cells: list[dict], frame: pl.DataFrame) -> list[str]:
    """What a reviewer needs to read the numbers: the interval method, the bold rule, how the Mean
    columns mix sets, the test sets' sizes and resolution, and the seeds a separation needs."""
    stats = Statistics.of(cells)
    level = percent(stats.level)
    resamples = next((len(c["resampled"]["E"][0]) for c in cells if c.get("resampled")), 0)
    seeds = max(frame["n_seeds"].to_list(), default=0)
    method = (f"Intervals: {level}, a paired two-level bootstrap ({resamples:,} resamples of every test set, "
              "the same for zero-shot, tuned and every method; the seeds' spread through t-calibrated seed weights)."
              + (" With one seed they cover test-set sampling only." if seeds == 1 else ""))
    notes = [method,
             f"Bold: the best mean of each column and every method not significantly worse than it (the {level} "
             "interval of their paired difference reaches 0).",
             f"Mean columns: each seed's mean over the downstream sets, then over the seeds; sets enter in "
             f"{NORMALISE_TEXT[stats.normalise]}.",
             *_test_sets(cells, stats)]
    return notes + [note for note in [seeds_note(cells)] if note]


def _group_label(group: str) -> str:
    return "Mean" if group == MEAN_GROUP else group


_MD_STYLE = {
    "escape": lambda s: s.replace("|", r"\|"),
    "interval": lambda lo, hi: f" [{lo}, {hi}]",
    "minus": "-",
    "dash": "–",
    "mark": lambda n: f"[^{n}]",
    "bold": lambda s: f"**{s}**",
}


def _markdown(frame: pl.DataFrame, notes: dict, caption: str, formula_text: dict, remarks: list[str],
              keep=_every_column) -> str:
    header = ["Method"] + [
        f"{_group_label(g)} {m}" for g in first_seen(frame["dataset"]) for m in METRICS if keep(g, m)
    ]
    lines = [f"**{caption}**", ""]
    lines += [f"- `{formula_text[m]}`" for m in METRICS]
    lines += ["", "| " + " | ".join(_MD_STYLE["escape"](h) for h in header) + " |"]
    lines.append("|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in _table_body(frame, notes, _MD_STYLE, keep)]
    lines += ([""] + [f"[^{i}]: {text}" for i, text in enumerate(notes.values(), start=1)]) if notes else []
    lines += [""] + [f"- {text}" for text in remarks]
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
    "interval": lambda lo, hi: rf" {{\scriptsize[{lo}, {hi}]}}",
    "minus": "$-$",  # a hyphen is not a minus sign in LaTeX text mode
    "dash": "--",
    "mark": lambda n: f"$^{{{n}}}$",
    "bold": lambda s: f"\\textbf{{{s}}}",
}


def _latex(frame: pl.DataFrame, notes: dict, caption: str, formula_text: dict, remarks: list[str]) -> str:
    """A table float that compiles in any document loading booktabs and graphicx: the caption states the
    formulas, the interval method and the bold rule; the other remarks follow the table."""
    groups = first_seen(frame["dataset"])
    labels = [latex_escape(_group_label(g)) for g in groups]
    formulas_tex = "; ".join(_FORMULAS_TEX[formula_text[m]] for m in METRICS)
    full_caption = f"{latex_escape(caption)} {formulas_tex}. {latex_escape(' '.join(remarks[:2]))}"
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
    below = [f"$^{{{i}}}$ {latex_escape(text)}" for i, text in enumerate(notes.values(), start=1)]
    below += [latex_escape(text) for text in remarks[2:]]
    if below:
        lines.append(r"\par\smallskip\footnotesize")
        lines.append(" \\\\\n".join(below))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


_HTML_STYLE = {
    "escape": html.escape,
    "interval": lambda lo, hi: f" <small>[{lo}, {hi}]</small>",
    "minus": "−",
    "dash": "–",
    "mark": lambda n: f"<sup>{n}</sup>",
    "bold": lambda s: f"<b>{s}</b>",
}


def _html(frame: pl.DataFrame, notes: dict, caption: str, formula_text: dict, remarks: list[str]) -> str:
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
            f"<tbody>\n{rows}</tbody></table>\n<ol>{notes_html}</ol>\n"
            f"<ul>{''.join(f'<li>{html.escape(t)}</li>' for t in remarks)}</ul></body></html>\n")


def markdown(cells: list[dict], caption: str, keep=_every_column) -> str:
    """The Markdown table alone, of the columns `keep(group, metric)` picks (a README's shorter table)."""
    _check_one_table(cells)
    frame = results_frame(cells)
    return _markdown(frame, _footnotes(frame, cells), caption, cells[0]["formulas"], statistical_notes(cells, frame),
                     keep)


def write_tables(cells: list[dict], out_prefix: Path, caption: str) -> dict[str, Path]:
    """Write the E/F/O table of one model as .md, .csv, .tex and .html next to `out_prefix`."""
    _check_one_table(cells)
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    frame = results_frame(cells)
    parts = (frame, _footnotes(frame, cells), caption, cells[0]["formulas"], statistical_notes(cells, frame))
    paths = {ext: out_prefix.with_suffix(f".{ext}") for ext in ("md", "csv", "tex", "html")}
    paths["md"].write_text(_markdown(*parts), encoding="utf-8")
    frame.write_csv(paths["csv"])
    paths["tex"].write_text(_latex(*parts), encoding="utf-8")
    paths["html"].write_text(_html(*parts), encoding="utf-8")
    return paths
