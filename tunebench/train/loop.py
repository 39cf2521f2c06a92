"""The training loop: the same loop pretrains the embedded base model and tunes any model with any
method. The loss is averaged per sample over its answer tokens, then over the batch, so long
captions do not dominate short answers. Every run writes a step log (loss, lr, samples/s) beside
its output, and checkpoints that a rerun of the same run resumes from (tunebench.train.checkpoint). A
run whose loss, gradient norm or weights stop being finite is stopped as diverged, with its step."""

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
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from ..models.inputs import Encoded, collate
from . import checkpoint as checkpoints
from .batches import Batches

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


class Diverged(RuntimeError):
    def __init__(self, step: int, what: str, value):
        super().__init__(f"{what} became {value} at step {step}")
        self.step = step


def check_finite(step: int, what: str, value: float) -> None:
    """Every step, cheaply: the loss before the update, and the norm of the gradient it applies."""
    if not math.isfinite(value):
        raise Diverged(step, what, value)


def check_weights(step: int, model) -> None:
    """At checkpoints and at the end: every trainable tensor's norm finite, so no blow-up is ever kept.
    The norm, not only the entries: weights of ~1e30 (an lr of 1e30) are finite, but their squares
    overflow float32, and so does every norm or dot product over them (NaN on the next forward pass)."""
    for name, p in model.named_parameters():
        if p.requires_grad and not torch.isfinite(torch.linalg.vector_norm(p.detach().float())):
            value = ("nan" if torch.isnan(p).any() else "inf" if torch.isinf(p).any()
                     else f"too large (max |w| {p.detach().abs().max().item():.3g}: its norm overflows float32)")
            raise Diverged(step, f"trainable tensor {name}", value)


@torch.no_grad()
def check_last_update(step: int, accelerator, model, batch: dict, labels: torch.Tensor) -> None:
    """The loss after the last update, which no later step checks (weights whose norm is finite can
    still overflow on a forward pass)."""
    loss = accelerator.reduce(batch_loss(model, batch, labels), "mean").item()
    if not math.isfinite(loss):
        raise Diverged(step, "loss after the last update", loss)


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


def _save_checkpoint(path: Path, run_identity: dict, accelerator, model, optimizer, scheduler, step: int,
                     log_rows: list, losses: list) -> None:
    """The trainable tensors (not the frozen base), optimizer, scheduler and the step reached, written
    by the main process (tunebench.train.checkpoint.save) while the others wait."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        trainable = {n: p for n, p in unwrapped.named_parameters() if p.requires_grad}
        checkpoints.save(path, run_identity, {"step": step, "trainable": trainable, "optimizer": optimizer.state_dict(),
                                              "scheduler": scheduler.state_dict(), "log": log_rows, "losses": losses})
    accelerator.wait_for_everyone()


def train(model, data: Encoded, batches: Batches, pad_id: int, lr: float, warmup: int,
          log_path: Path, max_grad_norm: float = 1.0, weight_decay: float = 0.0, desc: str = "train",
          checkpoint: Path | None = None, checkpoint_every: int = 0, run_identity: dict | None = None,
          precision: str = "fp32", gradient_checkpointing: bool = False) -> dict:
    """Optimise the model's trainable parameters; returns what the run really did. `precision`
    bf16/fp16 autocasts the forward pass (weights and optimizer state stay fp32).

    With `checkpoint` and `checkpoint_every`, the state is saved every that many steps and a rerun
    with the same `run_identity` (checkpoint.identity) resumes from it: the batch sequence is redrawn
    from its seed and the steps already done are skipped, so an interrupted run ends where an
    uninterrupted one does. A checkpoint of another run is discarded (stats["checkpoint"] says why).
    The caller removes the checkpoint once the run's outputs are written. Under `accelerate launch` each of N processes
    takes 1/N of every global batch and gradients are averaged, so the global batch stays the same.
    """
    # cpu=True without CUDA: accelerate only takes processes started by `accelerate launch` as
    # data-parallel (gloo) on CPU when told so; on one process it changes nothing.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=MIXED_PRECISION[precision])
    if gradient_checkpointing:  # recompute activations in backward: memory for compute
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, batches.total_steps)
    # The scheduler stays unprepared: accelerate would step it once per process per step, as if each
    # process saw a whole batch; here the processes share one global batch, so one step is one step.
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    resumed, checkpoint_note = None, None
    run_identity = run_identity or checkpoints.identity({}, None, [])
    if checkpoint is not None:
        unwrapped = accelerator.unwrap_model(model)
        trainable = {n for n, p in unwrapped.named_parameters() if p.requires_grad}
        resumed, checkpoint_note = checkpoints.resumable(checkpoint, run_identity, trainable)
        if resumed:
            checkpoints.restore(resumed, unwrapped, optimizer, scheduler)
    done = resumed["step"] if resumed else 0
    log_rows, losses = (resumed["log"], resumed["losses"]) if resumed else ([], [])
    attempt = log_rows[-1]["attempt"] + 1 if log_rows else 0
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # One process writes the log; the others write nowhere.
    with open(log_path if accelerator.is_main_process else os.devnull, "w") as log, \
            tqdm(total=batches.total_steps, initial=done, desc=desc, mininterval=5,
                 disable=not accelerator.is_main_process) as bar:
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
            check_finite(step, "loss", global_loss)
            accelerator.backward(loss)
            # Without clipping (max_grad_norm 0) the norm is still measured: an infinite limit clips nothing.
            grad_norm = accelerator.clip_grad_norm_(params, max_grad_norm or math.inf)
            check_finite(step, "gradient norm", float(grad_norm))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(global_loss)
            rate = len(indices) / (time.perf_counter() - t0)
            log_rows.append({"step": step, "loss": round(global_loss, 5), "lr": scheduler.get_last_lr()[0],
                             "samples_per_s": round(rate, 1), "attempt": attempt})
            log.write(json.dumps(log_rows[-1]) + "\n")
            log.flush()
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0 and step < batches.total_steps:
                check_weights(step, accelerator.unwrap_model(model))
                _save_checkpoint(checkpoint, run_identity, accelerator, model, optimizer, scheduler, step,
                                 log_rows, losses)
    if done < batches.total_steps:
        check_weights(batches.total_steps, accelerator.unwrap_model(model))
        check_last_update(batches.total_steps, accelerator, model, batch, labels)
    seconds = time.perf_counter() - start
    trained = batches.total_steps - done
    return {
        "steps": batches.total_steps,
        "resumed_from_step": done or None,
        "checkpoint": checkpoint_note,
        "train_seconds": round(seconds, 2),
        "samples_per_s": round(trained * batches.batch_size / seconds, 1) if trained else None,
        "final_loss": float(np.mean(losses[-20:])),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "device": str(accelerator.device),
        "num_processes": accelerator.num_processes,
        "precision": precision,
        "gradient_checkpointing": gradient_checkpointing,
    }
