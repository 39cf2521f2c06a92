"""Stages `tradeoff`, `figures` and `landing`: the E-vs-F plot of a model's methods, the report's own
figures and pages, and its front page."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..files import read_json, write_text
from ..results import figures, landing, samples


def tradeoff(title: str, cell_paths: list[Path], out: Path) -> None:
    """`out`: the PNG; its SVG goes beside it."""
    written = figures.plot_tradeoff([read_json(p) for p in cell_paths], Path(out), title)
    progress.drew(f"tradeoff {Path(out).stem}", written)


def figures_page(job: dict, cell_paths: list[Path], outputs: dict[str, Path]) -> None:
    """`job`: the plan's figures slice (title, seeds, each cell's training logs, the predictions files
    sampled and their sets' scoring)."""
    cells = [read_json(p) for p in cell_paths]
    logs = {(c["method"], c["dataset"]): job["train_logs"][f"{c['method']}/{c['dataset']}"] for c in cells}
    figures.score_bars(cells, Path(outputs["scores"]), job["title"])
    figures.loss_by_set(cells, logs, Path(outputs["loss_sets"]))
    figures.loss_curves(cells, logs, Path(outputs["loss"]))
    figures.cells_page(cells, Path(outputs["cells"]), job["title"])
    samples.predictions_page(cells, job["samples"], job["scoring"], job["seeds"][0], Path(outputs["predictions"]),
                             job["title"])
    progress.drew(f"figures {job['model']}", outputs.values())


def landing_page(job: dict, tables: list[Path], plots: list[Path], loss_dirs: list[Path], out: Path) -> None:
    """`job`: the plan's landing slice (study, models, downstream sets); per model, in its order, the
    table (HTML), the trade-off plot and the folder of loss figures per downstream set."""
    models = [{"model": model, "table_html": table, "tradeoff": plot,
               "loss": {d: Path(loss) / f"{d}.png" for d in job["downstream"]}}
              for model, table, plot, loss in zip(job["models"], tables, plots, loss_dirs)]
    write_text(landing.landing_rst(job["study"], models), Path(out))
    progress.drew(f"landing {job['study']}", [out])
