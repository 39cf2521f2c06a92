"""Stage `score`: metrics from predictions files (fixing a metric re-scores without regenerating)."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..evaluation.scoring import score_predictions
from ..files import read_json, write_json


def score_run(config: dict, predictions: dict[str, Path], tests: dict[str, Path], out: Path,
              run_path: Path | None = None) -> None:
    """Scores of one run on each of its eval sets; a diverged tuning run (per its run.json) has
    none, and its scores file says so."""
    run = read_json(run_path) if run_path else {}
    job = f"score {'/'.join(Path(out).parts[-4:-1])} {Path(out).stem}"
    if run.get("diverged"):
        write_json({"diverged": run["diverged"]}, out)
        progress.done(job, f"none: the run diverged at step {run['diverged']['step']}")
        return
    scores = {name: score_predictions(config, name, predictions[name], tests[name]) for name in predictions}
    write_json(scores, out)
    progress.done(job, ", ".join(f"{name} {s['scores'][s['primary']]:.1f}" for name, s in scores.items()))
