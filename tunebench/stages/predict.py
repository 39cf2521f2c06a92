"""Stage `predict`: greedy answers of the base model or a tuned one on test sets. Runs in the job's
process, or as N processes on disjoint shards of every test set under `accelerate launch` when the
job has N GPUs: `python -m tunebench.stages.predict ARGS.json`."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import PartialState

from .. import progress
from ..data import records
from ..evaluation import prediction
from ..files import read_json, write_json, write_jsonl
from ..methods.weights import load_tuned
from ..train.launch import run_stage, stage_main
from ..train.memory import Halving, peak_memory_mb, peak_rss_mb


def predict(job: dict, base: str | Path, tuned: Path | None, run_path: Path | None, test_paths: dict[str, Path],
            outputs: dict[str, Path], control: dict) -> None:
    """Greedy answers of the base model (`tuned` None) or a tuned one; `job` is the plan's predict
    slice (model loading keys, batch size, each set's generation length, the method's settings),
    `control` how the job runs (data-loading workers). A diverged run gets empty predictions files:
    there is no model to ask, and scoring reports it from run.json. What the job did (batch size,
    halvings, processes, peak memory) goes to run.json beside the predictions."""
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
    state = PartialState(cpu=not torch.cuda.is_available())
    model.to(state.device)
    batch = Halving(job["batch_size"], "prediction batch")
    samples = 0
    for name, path in test_paths.items():
        rows = prediction.predict(model, processor, records.FromParquet(path), batch, job["max_new_tokens"][name],
                                  desc=f"predict {run} on {name}", num_workers=control["num_workers"])
        if state.is_main_process:
            write_jsonl(rows, outputs[name])
        samples += len(rows)
    if state.is_main_process:
        write_json({"predict_batch_size": job["batch_size"], "final_batch_size": batch.size,
                    "oom_halvings": batch.halvings, "num_processes": state.num_processes,
                    "peak_memory_mb": peak_memory_mb(), "peak_rss_mb": peak_rss_mb()},
                   Path(next(iter(outputs.values()))).parent / "run.json")
    progress.predicted(run, samples, list(test_paths))


def run(args: dict, processes: int, threads: int) -> None:
    """Predict with `processes` processes (the job's GPUs; 0 or 1: this process)."""
    run_stage("tunebench.stages.predict", main_with, args, processes, threads,
              Path(next(iter(args["outputs"].values()))).parent / "predict_args.json")


def main_with(args: dict) -> None:
    predict(**args)


if __name__ == "__main__":
    stage_main(main_with)
