"""Stage `predict`: greedy answers of the base model or a tuned one on test sets."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import progress
from ..data import schema
from ..evaluation import prediction
from ..files import read_json, write_jsonl
from ..methods.weights import load_tuned


def predict(job: dict, base: str | Path, tuned: Path | None, run_path: Path | None, test_paths: dict[str, Path],
            outputs: dict[str, Path]) -> None:
    """Greedy answers of the base model (`tuned` None) or a tuned one; `job` is the plan's predict
    slice (model loading keys, batch size, each set's generation length, the method's settings). A
    diverged run gets empty predictions files: there is no model to ask, and scoring reports it."""
    # Named as its outputs are, predictions/<model>/<method>/<dataset>/seed<s>/<set>.jsonl
    # (a WiSE-FT method predicts from another method's run).
    model_name, method, dataset, seed = Path(next(iter(outputs.values()))).parts[-5:-1]
    run = f"{model_name}/{method}/{dataset} seed {seed.removeprefix('seed')}"
    if run_path is not None and read_json(run_path)["diverged"]:
        for path in outputs.values():
            write_jsonl([], path)
        progress.predicted(run, None, list(test_paths))
        return
    model, processor = load_tuned(job["load"], base, tuned, job["method"])
    if torch.cuda.is_available():
        model.to("cuda")
    samples = 0
    for name, path in test_paths.items():
        rows = prediction.predict(model, processor, schema.read_split(path), job["batch_size"],
                                  job["max_new_tokens"][name], desc=f"predict {run} on {name}")
        write_jsonl(rows, outputs[name])
        samples += len(rows)
    progress.predicted(run, samples, list(test_paths))
