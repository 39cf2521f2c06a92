"""The figures: the E-vs-F trade-off plot of a model's methods, and what `snakemake --report` shows
beyond the tables (zero-shot vs tuned scores, training loss per downstream set and per cell, a page
of every cell's costs and provenance). Matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import NamedTuple

import polars as pl

from ..config import sweep_entry
from ..files import read_jsonl, write_text
from .tables import MEAN_GROUP, Statistics, first_seen, percent, results_frame


def figure(width: float, height: float):
    """A bare Figure on the Agg canvas: no pyplot global state, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=150)
    FigureCanvasAgg(fig)
    return fig


def save(fig, out_png: Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(out_png)
    return out_png


def save_png_and_svg(fig, out_png: Path) -> list[Path]:
    """The PNG (for the report) and an SVG beside it (for papers: vector, editable text). The SVG
    without a date and with fixed ids: the same figure, the same bytes (make docs rewrites nothing)."""
    import matplotlib

    svg = Path(out_png).with_suffix(".svg")
    save(fig, out_png)
    with matplotlib.rc_context({"svg.hashsalt": "tunebench"}):
        fig.savefig(svg, metadata={"Date": None})
    return [Path(out_png), svg]


# ---- one style per method, in every figure -----------------------------------------------------

MARKERS = "osD^vPX*hp<>"
HATCHES = ("", "....", "xxxx", "\\\\", "++++")  # bars of a sweep's later members (bars have no marker)
ZERO_SHOT = {"color": "white", "edgecolor": "black", "hatch": "///", "linewidth": 0.5}  # no method's colour


class Style(NamedTuple):
    colour: tuple
    marker: str
    hatch: str


def method_styles(methods: list[str]) -> dict[str, Style]:
    """A colour, a marker and a bar hatch per method, the same in every figure of a model (its methods
    in config order): the methods of one sweep (<entry>@<value>) share a colour and differ in marker
    and hatch. tab20's ten strong colours come first, then their light partners (zero-shot is hatched
    black on white, in none of them)."""
    from matplotlib import colormaps

    pairs = colormaps["tab20"].colors
    palette = pairs[0::2] + pairs[1::2]
    entries = first_seen(sweep_entry(m) for m in methods)
    styles = {}
    for method in methods:
        entry = entries.index(sweep_entry(method))
        member = [m for m in methods if sweep_entry(m) == sweep_entry(method)].index(method)
        styles[method] = Style(palette[entry % len(palette)], MARKERS[(member + entry // len(palette)) % len(MARKERS)],
                               HATCHES[member % len(HATCHES)])
    return styles


# ---- the trade-off plot ------------------------------------------------------------------------

UNITS = {"none": "points", "zeroshot": "% of zero-shot", "range": "% of full scale"}  # aggregation.normalise

def plot_tradeoff(cells: list[dict], out_png: Path, title: str) -> list[Path]:
    """E vs F per method (see `tradeoff_figure`) as a PNG and an SVG."""
    return save_png_and_svg(tradeoff_figure(cells, title), out_png)


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The methods no other method beats on both E and F (higher is better on each), by E."""
    def dominated(a):
        return any(b != a and points[b][0] >= points[a][0] and points[b][1] >= points[a][1] and points[b] != points[a]
                   for b in points)

    return sorted((m for m in points if not dominated(m)), key=lambda m: points[m][0])


def _limits(values: list[float]) -> tuple[float, float]:
    """Axis limits around the means (not the bars: with few seeds an interval may span the whole scale;
    bars running off the axes say so)."""
    low, high = min(values), max(values)
    pad = max(0.12 * (high - low), 2.0)
    return low - pad, high + pad


def _tradeoff_panel(ax, rows: list[dict], styles: dict, label: bool) -> None:
    """One panel: each method's E and F with their intervals, sweeps joined, the Pareto front, and
    (`label`) each method's name, placed by adjustText so no two overlap."""
    points = {r["method"]: (r["E_mean"], r["F_mean"]) for r in rows if r["E_mean"] is not None}
    if not points:
        ax.text(0.5, 0.5, "no finished cell", transform=ax.transAxes, ha="center", color="0.4")
        return
    front = pareto_front(points)
    for r in rows:
        if r["E_mean"] is None:
            continue
        colour, marker, _ = styles[r["method"]]
        # On the front: a black rim, so its members stand out in a crowd.
        ax.errorbar(r["E_mean"], r["F_mean"], xerr=[[r["E_mean"] - r["E_lo"]], [r["E_hi"] - r["E_mean"]]],
                    yerr=[[r["F_mean"] - r["F_lo"]], [r["F_hi"] - r["F_mean"]]], fmt=marker, color=colour,
                    markeredgecolor="black" if r["method"] in front else colour, markersize=6, elinewidth=0.8,
                    capsize=2, alpha=0.9, label=r["method"], zorder=3)
    for entry in first_seen(sweep_entry(m) for m in points):
        sweep = [points[m] for m in points if sweep_entry(m) == entry]
        if len(sweep) > 1:
            ax.plot(*zip(*sweep), "-", color=styles[next(m for m in points if sweep_entry(m) == entry)].colour,
                    linewidth=1.2, alpha=0.8, zorder=2)
    ax.plot(*zip(*(points[m] for m in front)), "--", color="black", linewidth=1, alpha=0.6, zorder=1,
            label="Pareto front")
    ax.axhline(0.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(*_limits([p[0] for p in points.values()]))
    ax.set_ylim(*_limits([p[1] for p in points.values()]))
    if label:
        from adjustText import adjust_text

        # Start each label just up-right of its point, and labels of the same point one above the other
        # (adjustText cannot push apart texts that start in one place); adjustText then moves them apart.
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        before = [p for p in points.values()]
        texts = [ax.text(e + 0.01 * (x1 - x0), f + (0.01 + 0.04 * before[:i].count((e, f))) * (y1 - y0), m,
                         fontsize=7.5, color="0.15") for i, (m, (e, f)) in enumerate(points.items())]
        xs, ys = zip(*points.values())
        adjust_text(texts, x=list(xs), y=list(ys), ax=ax, expand=(1.2, 1.4),
                    arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.5})


def tradeoff_figure(cells: list[dict], title: str):
    """E vs F per method: a large panel of the Mean columns (every method labelled), then one panel per
    downstream set; bars are the cells' intervals, a dashed line the Pareto front, a solid one joins
    each sweep's methods in sweep order. Colours and markers are `method_styles`'s."""
    frame = results_frame(cells)
    level = percent(Statistics.of(cells).level)
    methods = first_seen(frame["method"])
    datasets = [d for d in first_seen(frame["dataset"]) if d != MEAN_GROUP]
    styles = method_styles(methods)
    columns = min(3, len(datasets))
    rows_below = -(-len(datasets) // columns)
    fig = figure(max(4.2 * columns + 1.5, 9.0), 6.0 + 3.4 * rows_below)
    fig.set_layout_engine("constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=[6.0, 3.4 * rows_below])
    mean_ax = fig.add_subplot(grid[0])
    per_set = grid[1].subgridspec(rows_below, columns)
    by_group = {g: list(frame.filter(pl.col("dataset") == g).iter_rows(named=True)) for g in datasets + [MEAN_GROUP]}
    for i, dataset in enumerate(datasets):
        ax = fig.add_subplot(per_set[i // columns, i % columns])
        _tradeoff_panel(ax, by_group[dataset], styles, label=False)
        ax.set_title(f"tuned on {dataset}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("E", fontsize=8)
        ax.set_ylabel("F", fontsize=8)
    _tradeoff_panel(mean_ax, by_group[MEAN_GROUP], styles, label=True)
    mean_ax.set_title("Mean over the downstream sets", fontsize=10)
    units = UNITS[Statistics.of(cells).normalise]
    mean_ax.set_xlabel(f"E: specialization gain ({units})")
    mean_ax.set_ylabel(f"F: upstream change ({units}, < 0 = forgetting)")
    handles = {h.get_label(): h for ax in fig.axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend([handles[m] for m in methods + ["Pareto front"] if m in handles],
               [m for m in methods + ["Pareto front"] if m in handles], loc="outside right upper", fontsize=7,
               frameon=False)
    fig.suptitle(f"{title}: specialization against forgetting (bars: {level} intervals)", fontsize=11)
    return fig


# ---- zero-shot and tuned scores ------------------------------------------------------------------

def scale_groups(cell: dict) -> list[tuple[float | None, list[str]]]:
    """A cell's sets (downstream first) grouped by full scale, so each group gets an axis of its own
    (accuracies 0-100 beside CIDEr-D x 100's 0-1000); a set with no fixed scale stands alone."""
    sets = [cell["dataset"]] + cell["upstream"]
    scales = cell["full_scale"]
    groups: dict = {}
    for name in sets:
        groups.setdefault(scales.get(name) or ("own", name), []).append(name)
    return [(None if isinstance(key, tuple) else key, names) for key, names in groups.items()]


def score_bars(cells: list[dict], out_png: Path, title: str) -> list[Path]:
    """The scores figure (see `scores_figure`) as a PNG and an SVG."""
    return save_png_and_svg(scores_figure(cells, title), out_png)


def scores_figure(cells: list[dict], title: str):
    """Per downstream set, one row: the score on it and on every upstream set, zero-shot vs each method,
    with their intervals; one axis per scale of score."""
    downstream = first_seen(c["dataset"] for c in cells)
    methods = first_seen(c["method"] for c in cells)
    styles = method_styles(methods)
    finished = {d: [c for c in cells if c["dataset"] == d and c["mean"]] for d in downstream}
    layout = {d: scale_groups(finished[d][0]) if finished[d] else [] for d in downstream}
    sets = max((sum(len(n) for _, n in groups) for groups in layout.values()), default=1)
    fig = figure(max(7.0, 0.12 * (len(methods) + 1) * sets + 2.5), 3.4 * len(downstream))
    fig.set_layout_engine("constrained")
    rows = fig.add_gridspec(len(downstream), 1)
    handles = {}
    for row, dataset in enumerate(downstream):
        if not finished[dataset]:
            ax = fig.add_subplot(rows[row])
            ax.set_title(f"{title}: tuned on {dataset}: no finished cell", fontsize=10)
            ax.axis("off")
            continue
        groups = layout[dataset]
        axes = rows[row].subgridspec(1, len(groups), width_ratios=[len(n) for _, n in groups])
        for column, (full_scale, names) in enumerate(groups):
            ax = fig.add_subplot(axes[0, column])
            _score_group(ax, finished[dataset], names, dataset, styles, handles, full_scale)
            ax.set_ylabel("score" + (f" (full scale {full_scale:g})" if full_scale else ""), fontsize=8)
            if column == 0:
                ax.set_title(f"tuned on {dataset}", fontsize=10, loc="left")
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 8),
               fontsize=7, frameon=False)
    fig.suptitle(f"{title}: zero-shot and tuned scores (bars: {percent(Statistics.of(cells).level)} intervals)",
                 fontsize=11)
    return fig


def _score_group(ax, cells: list[dict], names: list[str], downstream: str, styles: dict, handles: dict,
                 full_scale: float | None) -> None:
    """Bars of the sets `names` on one axis: zero-shot (grey), then each method, with interval bars
    (cut at the full scale: with few seeds an interval may pass it)."""
    def score(cell, name, when):
        mean = cell["mean"]["downstream"] if name == downstream else cell["mean"]["upstream"][name]
        interval = cell["interval"]["downstream"] if name == downstream else cell["interval"]["upstream"][name]
        return mean[when], interval[when]

    bars = [("zero-shot", ZERO_SHOT, [score(cells[0], n, "before") for n in names])]
    bars += [(c["method"], {"color": styles[c["method"]].colour, "hatch": styles[c["method"]].hatch, "edgecolor": "white",
                            "linewidth": 0}, [score(c, n, "after") for n in names]) for c in cells]
    width = 0.8 / len(bars)
    for i, (label, look, values) in enumerate(bars):
        xs = [x + (i - (len(bars) - 1) / 2) * width for x in range(len(names))]
        means = [v for v, _ in values]
        errors = [[v - lo for v, (lo, _) in values], [hi - v for v, (_, hi) in values]]
        handles[label] = ax.bar(xs, means, width, yerr=errors, capsize=1.5, label=label, error_kw={"elinewidth": 0.6},
                                **look)
    ax.set_xticks(range(len(names)), [f"{n}\n(downstream)" if n == downstream else n for n in names], fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    tops = [hi for _, _, values in bars for _, (_, hi) in values]
    if full_scale and max(tops) > full_scale:
        ax.set_ylim(top=full_scale * 1.02)


def _seed_curves(cell: dict, logs: dict) -> dict[str, list[dict]]:
    """Each seed's train log rows (a diverged seed's, up to where it stopped)."""
    return {str(seed): read_jsonl(path) for seed, path in logs[(cell["method"], cell["dataset"])].items()
            if Path(path).exists()}


def loss_by_set(cells: list[dict], logs: dict[tuple[str, str], dict], out_dir: Path) -> list[Path]:
    """One PNG per downstream set, `<dataset>.png` (see `loss_set_figure`)."""
    return [save(loss_set_figure(cells, logs, dataset), Path(out_dir) / f"{dataset}.png")
            for dataset in dict.fromkeys(c["dataset"] for c in cells)]


def loss_set_figure(cells: list[dict], logs: dict[tuple[str, str], dict], dataset: str):
    """Every method's training loss per step on one downstream set, overlaid: the mean over its
    seeds, with a band from the lowest to the highest seed when there are several."""
    import numpy as np

    methods = list(dict.fromkeys(c["method"] for c in cells))
    colours = dict(zip(methods, _colours(len(methods))))  # a method keeps its colour in every figure
    fig = figure(7.0, 4.0)
    ax = fig.add_subplot()
    for cell in (c for c in cells if c["dataset"] == dataset):
        curves = [rows for rows in _seed_curves(cell, logs).values() if rows]
        if not curves:
            continue
        steps = min(len(rows) for rows in curves)  # a diverged seed stops early
        losses = np.array([[r["loss"] for r in rows[:steps]] for rows in curves])
        xs = [r["step"] for r in curves[0][:steps]]
        diverged = any("diverged" in s for s in cell["seeds"].values())
        colour = colours[cell["method"]]
        ax.plot(xs, losses.mean(0), color=colour, linewidth=1.3, label=cell["method"] + (" (diverged)" if diverged else ""))
        if len(curves) > 1:
            ax.fill_between(xs, losses.min(0), losses.max(0), color=colour, alpha=0.15, linewidth=0)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_title(f"{cells[0]['model']}: tuned on {dataset}", fontsize=10)
    ax.legend(fontsize=7, ncols=2 if len(methods) > 8 else 1, loc="upper right")
    return fig


def _colours(n: int) -> list:
    """Distinct colours for n lines: matplotlib's ten, then tab20's twenty."""
    from matplotlib import colormaps

    return [f"C{i}" for i in range(n)] if n <= 10 else [colormaps["tab20"](i % 20) for i in range(n)]


def loss_curves(cells: list[dict], logs: dict[tuple[str, str], dict], out_dir: Path) -> list[Path]:
    """One PNG per cell, `<method>/<dataset>.png`: training loss per step, one line per seed."""
    written = []
    for cell in cells:
        fig = figure(5.0, 3.2)
        ax = fig.add_subplot()
        for seed, steps in _seed_curves(cell, logs).items():
            diverged = cell["seeds"].get(seed, {}).get("diverged")
            ax.plot([s["step"] for s in steps], [s["loss"] for s in steps],
                    label=f"seed {seed}" + (" (diverged)" if diverged else ""))
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(f"{cell['model']}: {cell['method']} on {cell['dataset']}", fontsize=10)
        ax.legend(fontsize=8)
        written.append(save(fig, Path(out_dir) / cell["method"] / f"{cell['dataset']}.png"))
    return written


# ---- the cells page --------------------------------------------------------------------------

def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>\n" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"


def _pm(cell: dict, key: str, digits: int = 1) -> str:
    if not cell["mean"]:
        return "–"
    return f"{cell['mean'][key]:.{digits}f} ± {cell['std'][key]:.{digits}f}"


def _git(env: dict | None) -> str:
    git = (env or {}).get("git") or {}
    if not git.get("commit"):
        return "not recorded"
    return git["commit"][:12] + (" (uncommitted changes)" if git.get("dirty") else "")


def _hardware(env: dict | None) -> str:
    hw = (env or {}).get("hardware")
    if not hw:
        return "not recorded"
    gpus = hw.get("gpus")
    gpu_text = f"{len(gpus)} GPU: {', '.join(sorted(set(gpus)))}" if gpus else "no GPU"
    return f"{hw['cpu']} ({hw['cpus_usable']}/{hw['cpus']} CPUs), {gpu_text}"


def _summary_rows(cells: list[dict]) -> list[list]:
    rows = []
    for c in cells:
        mean = c["mean"] or {}
        total = next((s["total_params"] for s in c["seeds"].values() if "total_params" in s), None)
        share = f" ({100 * mean['trainable_params'] / total:.2f}%)" if mean and total else ""
        rows.append([c["method"], c["dataset"], f"{c['n_seeds']}/{len(c['seeds'])}",
                     f"{mean['trainable_params']:,.0f}{share}" if mean else "–",
                     _pm(c, "train_seconds"), _pm(c, "peak_memory_mb", 0),
                     _pm(c, "E"), _pm(c, "F"), _pm(c, "O")])
    return rows


def _cell_section(cell: dict) -> str:
    prov = cell["provenance"]
    seeds = []
    for seed, result in cell["seeds"].items():
        env = prov["runs"][seed]["environment"]
        if "diverged" in result:
            outcome = f"diverged at step {result['diverged']['step']}: {result['diverged']['reason']}"
        else:
            outcome = (f"{result['downstream']['before']:.1f} → {result['downstream']['after']:.1f}; "
                       f"E {result['E']:.1f}, F {result['F']:.1f}, O {result['O']:.1f}")
        seeds.append([seed, outcome, f"{result.get('trainable_params', 0):,}", result.get("train_seconds", "–"),
                      result.get("peak_memory_mb", "–"), _git(env), _hardware(env),
                      ", ".join(f"{k} {v}" for k, v in ((env or {}).get("libraries") or {}).items() if v)])
    hashes = [[path, digest] for path, digest in prov["data"].items()]
    hashes += [[f"base model seed {seed}: {name}", digest]
               for seed, run in prov["runs"].items() for name, digest in run["base_weights"].items()]
    name = f"{cell['method']} / {cell['dataset']}"
    return (f'<h3 id="{html.escape(cell["method"])}-{html.escape(cell["dataset"])}">{html.escape(name)}</h3>\n'
            + _table(["seed", "downstream before → after; E, F, O", "trainable params", "train s", "peak MB",
                      "workflow commit", "hardware", "libraries"], seeds)
            + "<p>Files used (sha256):</p>\n" + _table(["file", "sha256"], hashes)
            + "<details><summary>the resolved plan behind this cell</summary><pre>"
            + html.escape(json.dumps(prov["plan"], indent=1)) + "</pre></details>\n"
            + f"<p>Aggregated at commit {html.escape(_git(prov['aggregated_by']))}.</p>\n")


def cells_page(cells: list[dict], out_html: Path, title: str) -> Path:
    """Per cell: what it cost (trainable parameters, time, memory) and where it came from."""
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
            "<style>table{border-collapse:collapse;margin-bottom:1em}th,td{padding:2px 8px;"
            "border-bottom:1px solid #ccc;text-align:left;font-size:90%}</style></head><body>\n"
            f"<h2>{html.escape(title)}: cells</h2>\n<p>Mean ± std over seeds that did not diverge.</p>\n"
            + _table(["method", "dataset", "seeds", "trainable params", "train s", "peak memory MB", "E", "F", "O"],
                     _summary_rows(cells))
            + "<h2>Provenance per cell</h2>\n" + "".join(_cell_section(c) for c in cells) + "</body></html>\n")
    write_text(page, Path(out_html))
    return Path(out_html)
