"""The training loop: the same loop pretrains the embedded base model and tunes any model with any
method. The loss is averaged per sample over its answer tokens, then over the batch, so long
captions do not dominate short answers. Every run writes a step log (loss, lr, samples/s) beside
its output, and checkpoints that a rerun resumes from."""

from __future__ import annotations

import json
import math
import os
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from transformers import get_cosine_schedule_with_warmup

from ..files import atomic_write
from ..models.inputs import Encoded, collate
from ..progress import Progress
from .batches import Batches

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


class Diverged(RuntimeError):
    def __init__(self, step: int, loss: float):
        super().__init__(f"loss became {loss} at step {step}")
        self.step, self.loss = step, loss


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    token_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="none"
    ).view(labels.shape)
    mask = (labels != -100).float()
    return ((token_loss * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def batch_loss(model, batch: dict, labels: torch.Tensor) -> torch.Tensor:
    # Prompt tuning prepends virtual tokens: the logits of the real tokens are the last ones.
    return per_sample_loss(model(**batch).logits[:, -labels.shape[1]:], labels)


def losses_on(data: Encoded, batches, pad_id: int):
    """`losses(model)`: yields the loss on each of `batches` (lists of row indices), as a method
    that measures importance before tuning (sparse, gradient mask) consumes it."""
    def losses(model):
        for indices in batches:
            batch = collate(data, indices, pad_id)
            labels = batch.pop("labels")
            yield batch_loss(model, batch, labels)
    return losses


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def is_main_process() -> bool:
    """The process that writes a run's outputs (the only one without `accelerate launch`)."""
    return PartialState().is_main_process


def checkpoint_path(out_dir: Path) -> Path:
    """Beside the run's output, not in it: Snakemake deletes a job's outputs before rerunning it."""
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}.checkpoint.pt"


def _rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


def _save_checkpoint(path: Path, accelerator, model, optimizer, scheduler, step: int, log_rows: list, losses: list):
    """Trainable tensors (not the frozen base), optimizer, scheduler, RNG states and the step reached,
    written under a temporary name then renamed, so a kill mid-save leaves the previous checkpoint."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        state = {
            "step": step,
            "trainable": {n: p.detach().cpu() for n, p in unwrapped.named_parameters() if p.requires_grad},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_states(),
            "log": log_rows,
            "losses": losses,
        }
        atomic_write(path, lambda tmp: torch.save(state, tmp))
    accelerator.wait_for_everyone()


def _load_checkpoint(path: Path, accelerator, model, optimizer, scheduler) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    unwrapped = accelerator.unwrap_model(model)
    trainable = {n for n, p in unwrapped.named_parameters() if p.requires_grad}
    if set(state["trainable"]) != trainable:
        raise ValueError(f"{path}: checkpoint holds other trainable tensors than this run; delete it to start over")
    unwrapped.load_state_dict(state["trainable"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_states(state["rng"])
    return state


def train(model, data: Encoded, batches: Batches, pad_id: int, lr: float, warmup: int,
          log_path: Path, max_grad_norm: float = 1.0, weight_decay: float = 0.0, desc: str = "train",
          checkpoint: Path | None = None, checkpoint_every: int = 0,
          precision: str = "fp32", gradient_checkpointing: bool = False,
          trackers: list = (), hyperparameters: dict | None = None) -> dict:
    """Optimise the model's trainable parameters; returns what the run really did. `precision`
    bf16/fp16 autocasts the forward pass (weights and optimizer state stay fp32).

    With `checkpoint` and `checkpoint_every`, the state is saved every that many steps and a rerun
    resumes from it: the batch sequence is redrawn from its seed and the steps already done are
    skipped, so an interrupted run ends where an uninterrupted one does. The caller removes the
    checkpoint once the run's outputs are written. Under `accelerate launch` each of N processes
    takes 1/N of every global batch and gradients are averaged, so the global batch stays the same.
    `trackers` (tunebench.tracking) get every step's loss, lr and samples/s, and `hyperparameters`.
    """
    # cpu=True without CUDA: accelerate only takes processes started by `accelerate launch` as
    # data-parallel (gloo) on CPU when told so; on one process it changes nothing.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=MIXED_PRECISION[precision],
                              log_with=list(trackers) or None)
    if trackers:
        accelerator.init_trackers(desc, config=hyperparameters)
    if gradient_checkpointing:  # recompute activations in backward: memory for compute
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, batches.total_steps)
    # The scheduler stays unprepared: accelerate would step it once per process per step, as if each
    # process saw a whole batch; here the processes share one global batch, so one step is one step.
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    resumed = None
    if checkpoint is not None and Path(checkpoint).exists():
        resumed = _load_checkpoint(checkpoint, accelerator, model, optimizer, scheduler)
    done = resumed["step"] if resumed else 0
    log_rows, losses = (resumed["log"], resumed["losses"]) if resumed else ([], [])
    attempt = log_rows[-1]["attempt"] + 1 if log_rows else 0
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # One process writes the log; the others write nowhere.
    with open(log_path if accelerator.is_main_process else os.devnull, "w") as log, \
            Progress(desc, batches.total_steps, "step", done, enabled=accelerator.is_main_process) as progress:
        log.writelines(json.dumps(row) + "\n" for row in log_rows)  # the steps done before resuming
        for step, indices in enumerate(batches, start=1):
            if step <= done:
                continue  # drawn to move the batch sequence on, trained before the checkpoint
            t0 = time.perf_counter()
            # Each process takes its share of the global batch.
            mine = indices[accelerator.process_index::accelerator.num_processes]
            batch = {k: v.to(accelerator.device) for k, v in collate(data, mine, pad_id).items()}
            labels = batch.pop("labels")
            loss = batch_loss(model, batch, labels)
            # The mean over processes: every process sees the same value, so all stop together.
            global_loss = accelerator.reduce(loss.detach(), "mean").item()
            if not math.isfinite(global_loss):
                raise Diverged(step, global_loss)
            accelerator.backward(loss)
            if max_grad_norm:
                accelerator.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(global_loss)
            rate = len(indices) / (time.perf_counter() - t0)
            step_lr = scheduler.get_last_lr()[0]
            # total_steps and time: `tunebench status` reads a running job's step count and ETA here.
            log_rows.append({"step": step, "total_steps": batches.total_steps, "loss": round(global_loss, 5),
                             "lr": step_lr, "samples_per_s": round(rate, 1), "attempt": attempt,
                             "time": round(time.time(), 2)})
            log.write(json.dumps(log_rows[-1]) + "\n")
            log.flush()
            accelerator.log({"loss": global_loss, "lr": step_lr, "samples_per_s": rate}, step=step)
            progress.update(1, {"loss": float(np.mean(losses[-10:])), "samples/s": round(rate, 1)})
            if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0 and step < batches.total_steps:
                _save_checkpoint(checkpoint, accelerator, model, optimizer, scheduler, step, log_rows, losses)
    seconds = time.perf_counter() - start
    trained = batches.total_steps - done
    return {
        "steps": batches.total_steps,
        "resumed_from_step": done or None,
        "train_seconds": round(seconds, 2),
        "samples_per_s": round(trained * batches.batch_size / seconds, 1) if trained else None,
        "final_loss": float(np.mean(losses[-20:])),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "device": str(accelerator.device),
        "num_processes": accelerator.num_processes,
        "precision": precision,
        "gradient_checkpointing": gradient_checkpointing,
    }
