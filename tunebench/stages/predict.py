"""Stage `predict`: greedy answers of the base model or a tuned one on test sets. Runs in the job's
process, or as N processes on disjoint shards of every test set under `accelerate launch` when the
job has N GPUs: `python -m tunebench.stages.predict ARGS.json`."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import PartialState

from .. import progress
from ..config import method_settings
from ..data import records
from ..evaluation import prediction
from ..files import read_json, write_json, write_jsonl
from ..methods.weights import load_tuned
from ..models.inputs import NUM_WORKERS
from ..train.launch import run_stage, stage_main
from ..train.memory import Halving, peak_memory_mb, peak_rss_mb


def predict(config: dict, model_name: str, method: str | None, base_dir: Path, tuned: Path | None,
            run_path: Path | None, test_paths: dict[str, Path], outputs: dict[str, Path]) -> None:
    """Greedy answers of the base model (`tuned` None) or a tuned one. A diverged run gets empty
    predictions files: there is no model to ask, and scoring reports it from run.json. What the job
    did (batch size, halvings, processes, peak memory) goes to run.json beside the predictions."""
    run = "/".join(Path(run_path).parent.parts[-4:]) if run_path else f"{model_name}/zero-shot/{Path(base_dir).name}"
    if run_path is not None and read_json(run_path)["diverged"]:
        for path in outputs.values():
            write_jsonl([], path)
        progress.done(f"predict {run}", "no answers: the run diverged")
        return
    spec = config["models"][model_name]
    settings = method_settings(config, method, model_name) if tuned is not None else None
    model, processor = load_tuned(spec, base_dir, tuned, settings)
    state = PartialState(cpu=not torch.cuda.is_available())
    model.to(state.device)
    batch = Halving(spec.get("predict_batch_size", 64), "prediction batch")
    samples = 0
    for name, path in test_paths.items():
        rows = prediction.predict(model, processor, records.FromParquet(path), batch,
                                  config["datasets"][name].get("max_new_tokens"), desc=f"predict {name}",
                                  num_workers=spec.get("num_workers", NUM_WORKERS))
        if state.is_main_process:
            write_jsonl(rows, outputs[name])
        samples += len(rows)
    if state.is_main_process:
        write_json({"predict_batch_size": spec.get("predict_batch_size", 64), "final_batch_size": batch.size,
                    "oom_halvings": batch.halvings, "num_processes": state.num_processes,
                    "peak_memory_mb": peak_memory_mb(), "peak_rss_mb": peak_rss_mb()},
                   Path(next(iter(outputs.values()))).parent / "run.json")
    progress.done(f"predict {run}", f"{samples} answers on {len(test_paths)} test sets ({', '.join(test_paths)})")


def run(args: dict, processes: int, threads: int) -> None:
    """Predict with `processes` processes (the job's GPUs; 0 or 1: this process)."""
    run_stage("tunebench.stages.predict", main_with, args, processes, threads,
              Path(next(iter(args["outputs"].values()))).parent / "predict_args.json")


def main_with(args: dict, threads: int) -> None:
    torch.set_num_threads(threads)
    predict(**args)


if __name__ == "__main__":
    stage_main(main_with)
