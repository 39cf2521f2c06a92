"""Stage `tune`: one tuning run (a method on a downstream set, from one seed's base model). Runs in
the job's process, or as N data-parallel processes under `accelerate launch` when the job has N
GPUs: `python -m tunebench.stages.tune ARGS.json`, ARGS.json holding `tune`'s keyword arguments."""

from __future__ import annotations

import math
import random
from pathlib import Path

from .. import progress
from ..data import records
from ..files import write_json
from ..methods import registry as methods
from ..methods.weights import save_tuned, tensors_to_save
from ..models import families, inputs
from ..models.loading import load_base
from ..provenance import environment
from ..tracking import finish_trackers, run_hyperparameters, run_trackers
from ..train import batches as batching
from ..train import checkpoint as checkpoints
from ..train import loop as training
from ..train.launch import run_stage, stage_main
from ..train.sharding import full_tensors


def tune(job: dict, base: str | Path, train_path: Path, replay_paths: dict[str, Path], tuned_path: Path,
         run_path: Path, control: dict, code: str) -> None:
    """One tuning run; `job` is the plan's tune slice (model loading keys, the method's resolved
    settings, micro-batch and sharding, how its tensors are saved, the replay sets); `control` how
    the job runs (checkpoints, data-loading workers, the experiment trackers it logs to); `code` the
    stage's code fingerprint: with the slice and the inputs' content it is the run's identity, and
    only a checkpoint of that identity is resumed (run.json's `checkpoint` says). Writes the tuned
    tensors to `tuned_path` (an adapter directory, or the selected weights as one safetensors file),
    then `run_path` (run.json), last: its presence means the run finished. A diverged run writes no
    tensors: an empty placeholder stands at `tuned_path` and run.json says at which step and what
    stopped being finite."""
    settings, seed, dataset = dict(job["settings"]), job["seed"], job["dataset"]
    fam = families.family(job["load"]["family"])
    training.seed_everything(seed)
    model, processor = load_base(job["load"], base, training=True)
    train = records.FromParquet(train_path)
    if "steps" not in settings:  # given in epochs (the paper's 3): passes over this train split
        settings["steps"] = math.ceil(settings["epochs"] * len(train) / settings["batch_size"])
    parts = {dataset: train}
    mix = tuning_mix(settings, dataset)
    if "replay" in mix:
        replay = records.Concat(records.read(replay_paths))
        # Only as many upstream rows as the run can draw.
        per_batch = batching.batch_counts(mix, settings["batch_size"])["replay"]
        parts["replay"] = records.Subset(replay, random.Random(seed).sample(
            range(len(replay)), min(len(replay), per_batch * settings["steps"])))
    merged = records.Concat(parts)
    data, pools = inputs.Batched(merged, processor, with_targets=True), merged.pools

    # A method that measures importance before tuning (sparse, gradient mask) gets the tuning loss on
    # a few batches of the tuning mix, drawn apart from the tuning batches.
    losses = None
    if "mask_batches" in settings:
        probe = batching.Batches(pools, [batching.Phase(settings["mask_batches"], mix)], settings["batch_size"], seed + 1)
        losses = training.losses_on(data, probe)
    model, expected = methods.apply(model, fam, settings, losses)
    batches = batching.Batches(pools, [batching.Phase(settings["steps"], mix)], settings["batch_size"], seed)
    run_dir = Path(run_path).parent
    checkpoint = checkpoints.checkpoint_path(run_dir)
    # The base model is an input file only when the workflow built it; an hf model is named by the slice.
    input_files = ([base] if job["load"]["source"] == "embedded" else []) + [train_path, *replay_paths.values()]
    batches = batching.by_length(batches, data, settings["group_by_length"], seed)
    counts = methods.parameter_counts(model)
    diverged = None
    tracking = control["tracking"]
    trackers = run_trackers(tracking, job)
    try:
        stats = training.train(model, data, batches, settings["lr"], settings["warmup"], run_dir / "train_log.jsonl",
                               max_grad_norm=settings["max_grad_norm"], weight_decay=settings["weight_decay"],
                               precision=job["load"]["precision"], gradient_checkpointing=job["gradient_checkpointing"],
                               micro_batch_size=job["micro_batch_size"], distributed=job["distributed"],
                               num_workers=control["num_workers"],
                               desc=f"tune {job['model']}/{job['method']}/{dataset} seed {seed}",
                               checkpoint=checkpoint, checkpoint_every=control["checkpoint_every"],
                               run_identity=checkpoints.identity(job, code, input_files), trackers=trackers,
                               hyperparameters=run_hyperparameters(job, tracking["study"]) if trackers else None)
    except training.Diverged as err:
        diverged = {"step": err.step, "reason": str(err)}
        stats = {"train_seconds": None, "peak_memory_mb": training.peak_memory_mb()}
    finish_trackers(trackers)
    # The trainable set is checked again after training: nothing may have been unfrozen on the way.
    methods.check_trainable(model, expected, settings["kind"])
    # whole, gathered from every process's shard (all take part; the main process keeps them)
    trained = full_tensors(model, tensors_to_save(model, expected), keep=training.is_main_process())
    if training.is_main_process():
        save_tuned(model, expected, Path(tuned_path), placeholder=diverged is not None, state=trained)
        write_json({"model": job["model"], "method": job["method"], "dataset": dataset, "seed": seed,
                    "settings": settings, "load": job["load"],
                    "trainable_params": counts["trainable_params"], "total_params": counts["total_params"],
                    "trainable": counts["trainable"], "diverged": diverged, **stats,
                    "environment": environment()}, run_path)
        checkpoint.unlink(missing_ok=True)
    progress.tuned(job, counts["trainable_params"], stats, diverged)


def tuning_mix(settings: dict, dataset: str) -> dict[str, float]:
    """Each tuning batch's pools: the downstream set and, with `replay`, that fraction of upstream data."""
    replay = settings["replay"]
    return {dataset: 1.0 - replay, "replay": replay} if replay > 0 else {dataset: 1.0}


def run(args: dict, processes: int, threads: int) -> None:
    """Tune with `processes` data-parallel processes (the job's GPUs; 0 or 1: this process)."""
    run_dir = Path(args["run_path"]).parent
    run_stage("tunebench.stages.tune", main_with, args, processes, threads, run_dir / "tune_args.json",
              relaunch_note=training.relaunch_note(checkpoints.checkpoint_path(run_dir)))


def main_with(args: dict) -> None:
    tune(**args)


if __name__ == "__main__":
    stage_main(main_with)
