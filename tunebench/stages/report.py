"""Stage `figures`: the report's own figures and the per-cell page."""

from __future__ import annotations

from pathlib import Path

from .. import paths, progress
from ..config import tune_method
from ..files import read_json
from ..results import figures as report


def figures(config: dict, model_name: str, cell_paths: list[Path], outputs: dict[str, Path]) -> None:
    """The report's own figures and the per-cell page."""
    cells = [read_json(p) for p in cell_paths]
    root = paths.results_dir(config)
    logs = {(c["method"], c["dataset"]): {seed: Path(paths.tune_dir(root, model_name, tune_method(config, c["method"]),
                                                                     c["dataset"], seed))
                                          / "train_log.jsonl" for seed in config["seeds"]} for c in cells}
    title = f"{config['study']}: {model_name}"
    report.score_bars(cells, Path(outputs["scores"]), title)
    report.loss_curves(cells, logs, Path(outputs["loss"]))
    report.cells_page(cells, Path(outputs["cells"]), title)
    progress.done(f"figures {model_name}", f"score bars, {len(cells)} loss curves, cell details")
