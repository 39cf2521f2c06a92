"""Stage `score`: metrics from predictions files (fixing a metric re-scores without regenerating)."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..evaluation.scoring import score_predictions
from ..files import read_json, write_json


def score_run(job: dict, predictions: dict[str, Path], tests: dict[str, Path], out: Path,
              run_path: Path | None = None) -> None:
    """Scores of one run on each of its eval sets; `job` maps each set to its metric and primary key.
    A diverged tuning run (per its run.json) has none, and its scores file says so."""
    run = read_json(run_path) if run_path else {}
    *_, model, method, dataset, seed = Path(out).with_suffix("").parts  # scores/<model>/<run>/<dataset>/seed<s>.json
    name = f"score {model}/{method}/{dataset} seed {seed.removeprefix('seed')}"
    if run.get("diverged"):
        write_json({"diverged": run["diverged"]}, out)
        progress.scored(name, None, run["diverged"])
        return
    scores = {s: score_predictions(s, job[s], predictions[s], tests[s]) for s in predictions}
    write_json(scores, out)
    progress.scored(name, scores)
