"""Stage `tune`: one tuning run (a method on a downstream set, from one seed's base model). Runs in
the job's process, or as N data-parallel processes under `accelerate launch` when the job has N
GPUs: `python -m tunebench.stages.tune ARGS.json`, ARGS.json holding `tune`'s keyword arguments."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

from .. import progress
from ..data import schema
from ..files import write_json
from ..methods import registry as methods
from ..methods.weights import save_tuned
from ..models import families, inputs
from ..models.loading import load_base
from ..provenance import environment
from ..train import batches as batching
from ..train import loop as training
from ..train.launch import accelerate_command, main_process_port


def tune(job: dict, base: str | Path, train_path: Path, replay_paths: dict[str, Path], tuned_path: Path,
         run_path: Path, checkpoint_every: int = 0) -> None:
    """One tuning run; `job` is the plan's tune slice (model loading keys, the method's resolved
    settings, how its tensors are saved, the replay sets). Writes the tuned tensors to `tuned_path`
    (an adapter directory, or the selected weights as one safetensors file), then `run_path`
    (run.json), last: its presence means the run finished. A diverged run writes no tensors: an empty
    placeholder stands at `tuned_path` and run.json says at which step the loss stopped being finite."""
    settings, seed, dataset = dict(job["settings"]), job["seed"], job["dataset"]
    fam = families.family(job["load"]["family"])
    training.seed_everything(seed)
    model, processor = load_base(job["load"], base, training=True)
    pad_id = processor.tokenizer.pad_token_id
    train = schema.read_split(train_path)
    if "steps" not in settings:  # given in epochs (the paper's 3): passes over this train split
        settings["steps"] = math.ceil(settings["epochs"] * len(train) / settings["batch_size"])
    parts = {dataset: inputs.encode(train, processor, True)}
    mix = tuning_mix(settings, dataset)
    if "replay" in mix:
        replay = [r for rs in schema.read_splits(replay_paths).values() for r in rs]
        # Encode only as many upstream rows as the run can draw: encoding dominates short runs.
        per_batch = batching.batch_counts(mix, settings["batch_size"])["replay"]
        replay = random.Random(seed).sample(replay, min(len(replay), per_batch * settings["steps"]))
        parts["replay"] = inputs.encode(replay, processor, True)
    data, pools = inputs.concat(parts)

    # A method that measures importance before tuning (sparse, gradient mask) gets the tuning loss on
    # a few batches of the tuning mix, drawn apart from the tuning batches.
    losses = None
    if "mask_batches" in settings:
        probe = batching.Batches(pools, [batching.Phase(settings["mask_batches"], mix)], settings["batch_size"], seed + 1)
        losses = training.losses_on(data, probe, pad_id)
    model, expected = methods.apply(model, fam, settings, losses)
    batches = batching.Batches(pools, [batching.Phase(settings["steps"], mix)], settings["batch_size"], seed)
    run_dir = Path(run_path).parent
    checkpoint = training.checkpoint_path(run_dir)
    batches = batching.by_length(batches, [len(ids) for ids in data.input_ids], settings["group_by_length"], seed)
    counts = methods.parameter_counts(model)
    diverged = None
    try:
        stats = training.train(model, data, batches, pad_id, settings["lr"], settings["warmup"],
                               run_dir / "train_log.jsonl", max_grad_norm=settings["max_grad_norm"],
                               weight_decay=settings["weight_decay"], precision=job["load"]["precision"],
                               gradient_checkpointing=job["gradient_checkpointing"],
                               desc=f"tune {job['model']}/{job['method']}/{dataset} seed {seed}",
                               checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    except training.Diverged as err:
        diverged = {"step": err.step, "reason": str(err)}
        stats = {"train_seconds": None, "peak_memory_mb": training.peak_memory_mb()}
    # The trainable set is checked again after training: nothing may have been unfrozen on the way.
    methods.check_trainable(model, expected, settings["kind"])
    if training.is_main_process():
        save_tuned(model, expected, Path(tuned_path), placeholder=diverged is not None)
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
    if processes <= 1:
        main_with(args, threads)
        return
    args_path = Path(args["run_path"]).parent / "tune_args.json"
    write_json({**args, "threads": threads}, args_path)
    port = main_process_port(str(Path(args["run_path"]).resolve()))
    subprocess.run(accelerate_command("tunebench.stages.tune", [str(args_path)], processes, port), check=True)


def main_with(args: dict, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    tune(**args)


if __name__ == "__main__":
    loaded = json.loads(Path(sys.argv[1]).read_text())
    threads = loaded.pop("threads", 1)
    main_with(loaded, threads)
