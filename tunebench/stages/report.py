"""Stages `tradeoff` and `figures`: the E-vs-F plot of a model's methods, and the report's own
figures and per-cell page."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..files import read_json
from ..results import figures


def tradeoff(title: str, cell_paths: list[Path], out: Path) -> None:
    """`out`: the PNG; its SVG goes beside it."""
    written = figures.plot_tradeoff([read_json(p) for p in cell_paths], Path(out), title)
    progress.drew(f"tradeoff {Path(out).stem}", written)


def figures_page(job: dict, cell_paths: list[Path], outputs: dict[str, Path]) -> None:
    """`job`: the plan's figures slice (title, seeds, each cell's training logs)."""
    cells = [read_json(p) for p in cell_paths]
    logs = {(c["method"], c["dataset"]): job["train_logs"][f"{c['method']}/{c['dataset']}"] for c in cells}
    figures.score_bars(cells, Path(outputs["scores"]), job["title"])
    figures.loss_curves(cells, logs, Path(outputs["loss"]))
    figures.cells_page(cells, Path(outputs["cells"]), job["title"])
    progress.drew(f"figures {job['model']}", outputs.values())
