"""The figures: the E-vs-F trade-off plot of a model's methods, and what `snakemake --report` shows
beyond the tables (zero-shot vs tuned scores, training loss per downstream set and per cell, a page
of every cell's costs and provenance). Matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

import html
import json
from pathlib import Path

import polars as pl

from ..config import sweep_entry
from ..files import read_jsonl, write_text
from .tables import MEAN_GROUP, first_seen, results_frame


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
    fig.tight_layout()
    fig.savefig(out_png)
    return out_png


def plot_tradeoff(cells: list[dict], out_png: Path, title: str) -> Path:
    """E vs F per method (see `tradeoff_figure`) as a PNG."""
    return save(tradeoff_figure(cells, title), out_png)


def tradeoff_figure(cells: list[dict], title: str):
    """E vs F per method: a labelled marker at the mean over datasets, faded ones per dataset. The
    methods of one sweep (<entry>@<value>) share a colour and a line joins them in sweep order."""
    frame = results_frame(cells)
    fig = figure(6.4, 4.8)
    ax = fig.add_subplot()
    methods = first_seen(frame["method"])
    entries = first_seen(sweep_entry(m) for m in methods)
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


def score_bars(cells: list[dict], out_png: Path, title: str) -> Path:
    """Per downstream set, one panel: the score on it and on every upstream set, zero-shot vs each method."""
    downstream = list(dict.fromkeys(c["dataset"] for c in cells))
    fig = figure(max(6.0, 1.6 * (1 + len(cells[0]["upstream"]))), 3.2 * len(downstream))
    for row, dataset in enumerate(downstream, start=1):
        ax = fig.add_subplot(len(downstream), 1, row)
        ok = [c for c in cells if c["dataset"] == dataset and c["mean"]]
        if not ok:
            ax.set_title(f"tuned on {dataset}: no finished cell")
            continue
        sets = [dataset] + ok[0]["upstream"]

        def pairs(cell):
            return [cell["downstream"]] + [cell["upstream"][u] for u in cell["upstream"]]

        bars = [("zero-shot", [p["before"] for p in pairs(ok[0]["mean"])], [p["before"] for p in pairs(ok[0]["std"])])]
        bars += [(c["method"], [p["after"] for p in pairs(c["mean"])], [p["after"] for p in pairs(c["std"])])
                 for c in ok]
        width = 0.8 / len(bars)
        for i, (label, means, stds) in enumerate(bars):
            xs = [x + (i - (len(bars) - 1) / 2) * width for x in range(len(sets))]
            ax.bar(xs, means, width, yerr=stds, capsize=2, label=label, color="0.6" if i == 0 else f"C{i - 1}")
        ax.set_xticks(range(len(sets)), [f"{s}\n(downstream)" if s == dataset else s for s in sets], fontsize=8)
        ax.set_ylabel("primary metric")
        ax.set_title(f"{title}: tuned on {dataset}", fontsize=10)
        ax.legend(fontsize=7, ncols=min(len(bars), 4))
    return save(fig, out_png)


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
