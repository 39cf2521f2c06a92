"""Stage `predict`: greedy answers of the base model or a tuned one on test sets."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import progress
from ..config import method_settings
from ..data import schema
from ..evaluation import prediction
from ..files import read_json, write_jsonl
from ..methods.weights import load_tuned


def predict(config: dict, model_name: str, method: str | None, base_dir: Path, tuned: Path | None,
            run_path: Path | None, test_paths: dict[str, Path], outputs: dict[str, Path]) -> None:
    """Greedy answers of the base model (`tuned` None) or a tuned one. A diverged run gets empty
    predictions files: there is no model to ask, and scoring reports it from run.json."""
    run = "/".join(Path(run_path).parent.parts[-4:]) if run_path else f"{model_name}/zero-shot/{Path(base_dir).name}"
    if run_path is not None and read_json(run_path)["diverged"]:
        for path in outputs.values():
            write_jsonl([], path)
        progress.done(f"predict {run}", "no answers: the run diverged")
        return
    spec = config["models"][model_name]
    settings = method_settings(config, method, model_name) if tuned is not None else None
    model, processor = load_tuned(spec, base_dir, tuned, settings)
    if torch.cuda.is_available():
        model.to("cuda")
    batch_size = spec.get("predict_batch_size", 64)
    samples = 0
    for name, path in test_paths.items():
        rows = prediction.predict(model, processor, schema.read_split(path), batch_size,
                                  config["datasets"][name].get("max_new_tokens"), desc=f"predict {name}")
        write_jsonl(rows, outputs[name])
        samples += len(rows)
    progress.done(f"predict {run}", f"{samples} answers on {len(test_paths)} test sets ({', '.join(test_paths)})")
