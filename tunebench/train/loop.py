"""The training loop: the same loop pretrains the embedded base model and tunes any model with any
method. The loss is averaged per sample over its answer tokens, then over the global batch, so
long captions do not dominate short answers. Every run writes a step log (loss, lr, samples/s)
beside its output, and checkpoints that a rerun of the same run resumes from
(tunebench.train.checkpoint). A run whose loss, gradient norm or weights stop being finite is
stopped as diverged, with its step.

A global batch of B samples is spread over N processes (`accelerate launch`) and, within each, over
micro-batches of at most `micro_batch_size` samples whose gradients accumulate before one
optimizer step. Each sample's loss enters with weight N/B (processes average their gradients), so
the update is the global batch's whatever the split, even when micro-batches hold different numbers
of answer tokens. Batches are made by the processor in DataLoader workers while the model trains.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from transformers import get_cosine_schedule_with_warmup

from ..models.inputs import Batched
from ..progress import Progress
from . import checkpoint as checkpoints
from . import sharding
from .memory import Halving, peak_memory_mb, peak_rss_mb

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


class Diverged(RuntimeError):
    def __init__(self, step: int, what: str, value):
        super().__init__(f"{what} became {value} at step {step}")
        self.step = step


def check_finite(step: int, what: str, value: float) -> None:
    """Every step, cheaply: the loss before the update, and the norm of the gradient it applies
    (both the same in every process, so all stop together)."""
    if not math.isfinite(value):
        raise Diverged(step, what, value)


def check_weights(step: int, accelerator, model) -> None:
    """At checkpoints and at the end: every trainable tensor's norm finite, so no blow-up is ever kept.
    The norm, not only the entries: weights of ~1e30 (an lr of 1e30) are finite, but their squares
    overflow float32, and so does every norm or dot product over them (NaN on the next forward pass).
    Each process checks what it holds (its shards under FSDP); all stop if any finds one."""
    bad = None
    for name, p in model.named_parameters():
        local = p.detach()
        local = local.to_local() if isinstance(local, sharding.DTensor) else local
        if p.requires_grad and not torch.isfinite(torch.linalg.vector_norm(local.float())):
            value = ("nan" if torch.isnan(local).any() else "inf" if torch.isinf(local).any()
                     else f"too large (max |w| {local.abs().max().item():.3g}: its norm overflows float32)")
            bad = (f"trainable tensor {name}", value)
            break
    found = accelerator.reduce(torch.tensor(float(bad is not None), device=accelerator.device), "sum").item()
    if found:
        raise Diverged(step, *(bad or ("a trainable tensor in another process's shard", "not finite")))


def sample_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each sample's mean loss over its answer tokens."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    token_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="none"
    ).view(labels.shape)
    mask = (labels != -100).float()
    return (token_loss * mask).sum(1) / mask.sum(1).clamp(min=1)


def batch_losses(model, batch: dict, labels: torch.Tensor) -> torch.Tensor:
    # Prompt tuning prepends virtual tokens: the logits of the real tokens are the last ones.
    return sample_losses(model(**batch).logits[:, -labels.shape[1]:], labels)


def losses_on(data: Batched, batches):
    """`losses(model)`: yields the mean loss on each of `batches` (lists of record indices), as a
    method that measures importance before tuning (sparse, gradient mask) consumes it."""
    def losses(model):
        for batch in data.loader(list(batches), num_workers=0):
            labels = batch.pop("labels")
            yield batch_losses(model, batch, labels).mean()
    return losses


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def is_main_process() -> bool:
    """The process that writes a run's outputs (the only one without `accelerate launch`)."""
    return PartialState().is_main_process


def relaunch_note(checkpoint: Path) -> Path:
    """Where a multi-process run that ran out of memory leaves the micro-batch size to restart at."""
    return Path(checkpoint).with_suffix(".oom.json")


@dataclass
class Micro:
    """One micro-batch: its records and the weight of each one's loss (0: a stand-in that only
    keeps the processes' gradient exchanges in step when one has fewer samples than the others)."""

    indices: list[int]
    weight: float


def micro_batches(indices: list[int], rank: int, processes: int, size: int) -> list[Micro]:
    """This process's share of a global batch, in micro-batches of at most `size`; every process
    gets the same number of them."""
    share = indices[rank::processes]
    count = math.ceil(math.ceil(len(indices) / processes) / size)
    weight = processes / len(indices)
    return [Micro(part, weight) if (part := share[k * size:(k + 1) * size]) else Micro(indices[:1], 0.0)
            for k in range(count)]


class _Run:
    """The state one training run carries across steps: model, optimizer, schedule, micro-batch size."""

    def __init__(self, accelerator, model, optimizer, scheduler, data: Batched, steps: list[list[int]],
                 micro: Halving, num_workers: int, sharded: bool, max_grad_norm: float, params):
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.data, self.steps, self.micro, self.num_workers = data, steps, micro, num_workers
        self.sharded, self.max_grad_norm, self.params = sharded, max_grad_norm, params
        self._feed, self._next = None, None
        self.last = None  # the last micro-batch, for the check after the last update

    def plan(self, step: int, size: int) -> list[Micro]:
        acc = self.accelerator
        return micro_batches(self.steps[step - 1], acc.process_index, acc.num_processes, size)

    def _feed_at(self, step: int, size: int):
        """The loader's batches from `step` on at this micro-batch size: the running one, or a new one
        after a halving (or a step cut short, which leaves the running one at an unknown place)."""
        if self._next != (step, size):
            index_lists = [m.indices for s in range(step, len(self.steps) + 1) for m in self.plan(s, size)]
            self._feed = iter(self.data.loader(index_lists, self.num_workers))
        self._next = None  # until this step completes
        return self._feed

    def step(self, step: int, size: int) -> float:
        """One optimizer step's gradients: global batch `step` in micro-batches of `size`. Returns the
        global batch's loss (the same in every process)."""
        acc, model = self.accelerator, self.model
        self.optimizer.zero_grad(set_to_none=True)
        feed, plan = self._feed_at(step, size), self.plan(step, size)
        total = torch.zeros((), device=acc.device)
        for k, micro in enumerate(plan):
            batch = {key: v.to(acc.device, non_blocking=True) for key, v in next(feed).items()}
            labels = batch.pop("labels")
            # DDP exchanges gradients at the last micro-batch only; FSDP reduces each (its shards).
            syncing = self.sharded or k == len(plan) - 1
            with contextlib.nullcontext() if syncing else acc.no_sync(model):
                losses = batch_losses(model, batch, labels)
                acc.backward((losses * micro.weight).sum())
            total += losses.detach().sum() * (micro.weight > 0)
        self._next, self.last = (step + 1, size), (batch, labels)
        return acc.reduce(total, "sum").item() / len(self.steps[step - 1])

    def update(self, step: int) -> None:
        # Without clipping (max_grad_norm 0) the norm is still measured: an infinite limit clips nothing.
        norm = self.accelerator.clip_grad_norm_(self.params, self.max_grad_norm or math.inf)
        norm = norm.full_tensor() if isinstance(norm, sharding.DTensor) else norm
        check_finite(step, "gradient norm", float(norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def trainable(self) -> set[str]:
        return {n for n, p in self.accelerator.unwrap_model(self.model).named_parameters() if p.requires_grad}

    @torch.no_grad()
    def check_last_update(self, step: int) -> None:
        """The loss after the last update, which no later step checks (weights whose norm is finite
        can still overflow on a forward pass)."""
        batch, labels = self.last
        loss = self.accelerator.reduce(batch_losses(self.model, batch, labels).mean(), "mean").item()
        if not math.isfinite(loss):
            raise Diverged(step, "loss after the last update", loss)

    def save(self, path: Path, run_identity: dict, step: int, log_rows: list, losses: list) -> None:
        """Trainable tensors (not the frozen base) and optimizer state, whole (gathered from every
        shard), scheduler, the step and the micro-batch size reached, as a checkpoint of
        `run_identity` (tunebench.train.checkpoint.save: data only, replaced atomically)."""
        acc = self.accelerator
        unwrapped = acc.unwrap_model(self.model)
        check_weights(step, acc, unwrapped)
        trainable = sharding.full_tensors(unwrapped, self.trainable(), keep=acc.is_main_process)
        optimizer = get_optimizer_state_dict(unwrapped, self.optimizer.optimizer,
                                             options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if acc.is_main_process:
            checkpoints.save(path, run_identity, {
                "step": step, "trainable": trainable, "optimizer": optimizer, "scheduler": self.scheduler.state_dict(),
                "log": log_rows, "losses": losses, "micro_batch_size": self.micro.size, "halvings": self.micro.halvings})
        acc.wait_for_everyone()

    def restore(self, state: dict) -> None:
        """Put a resumable checkpoint's state back (checkpoint.resumable)."""
        unwrapped = self.accelerator.unwrap_model(self.model)
        options = StateDictOptions(full_state_dict=self.sharded, strict=False)
        set_model_state_dict(unwrapped, state["trainable"], options=options)
        set_optimizer_state_dict(unwrapped, self.optimizer.optimizer, state["optimizer"], options=options)
        self.scheduler.load_state_dict(state["scheduler"])
        checkpoints.set_rng_states(state["rng"])
        self.micro.size, self.micro.halvings = min(self.micro.size, state["micro_batch_size"]), state["halvings"]


def train(model, data: Batched, batches, lr: float, warmup: int, log_path: Path, max_grad_norm: float = 1.0,
          weight_decay: float = 0.0, desc: str = "train", checkpoint: Path | None = None, checkpoint_every: int = 0,
          run_identity: dict | None = None, precision: str = "fp32", gradient_checkpointing: bool = False,
          micro_batch_size: int | None = None, num_workers: int = 0, distributed: str = "ddp", trackers: list = (),
          hyperparameters: dict | None = None) -> dict:
    """Optimise the model's trainable parameters; returns what the run really did. `precision`
    bf16/fp16 autocasts the forward pass (weights and optimizer state stay fp32).

    `micro_batch_size` (per process; default: the process's whole share) with gradient
    accumulation; a micro-batch that runs out of device memory is halved for the rest of the run
    (a multi-process run restarts its processes at the halved size, see `memory.Halving`).
    `distributed: fsdp` shards the model over the processes.

    With `checkpoint` and `checkpoint_every`, the state is saved every that many optimizer steps
    and a rerun with the same `run_identity` (checkpoint.identity) resumes from it: the batch
    sequence is redrawn from its seed and the steps already done are skipped, so an interrupted run
    ends where an uninterrupted one does. A checkpoint of another run is discarded
    (`stats["checkpoint"]` says why). The caller removes the checkpoint once the run's outputs are
    written. `trackers` (tunebench.tracking) get every step's loss, lr and samples/s, and
    `hyperparameters`.
    """
    if distributed not in sharding.MODES:
        raise ValueError(f"distributed: {distributed!r} is not one of {sharding.MODES}")
    cpu = not torch.cuda.is_available()
    # cpu=True without CUDA: accelerate only takes processes started by `accelerate launch` as
    # data-parallel (gloo) on CPU when told so; on one process it changes nothing.
    sharded = distributed == "fsdp" and PartialState(cpu=cpu).num_processes > 1
    accelerator = Accelerator(cpu=cpu, mixed_precision="no" if sharded else MIXED_PRECISION[precision],
                              log_with=list(trackers) or None)
    if trackers:
        accelerator.init_trackers(desc, config=hyperparameters)
    if gradient_checkpointing:  # recompute activations in backward: memory for compute
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if sharded:
        model.to(accelerator.device)
        sharding.shard(model, precision)  # replaces the parameters by their shards: before the optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, batches.total_steps)
    # The scheduler stays unprepared: accelerate would step it once per process per step, as if each
    # process saw a whole batch; here the processes share one global batch, so one step is one step.
    if sharded:
        optimizer = accelerator.prepare(optimizer)
    else:
        model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    steps = list(batches)
    share = math.ceil(batches.batch_size / accelerator.num_processes)
    micro = Halving(min(micro_batch_size or share, share), "micro-batch")
    run = _Run(accelerator, model, optimizer, scheduler, data, steps, micro, num_workers, sharded, max_grad_norm, params)
    resumed, checkpoint_note = None, None
    run_identity = run_identity or checkpoints.identity({}, None, [])
    if checkpoint is not None:
        resumed, checkpoint_note = checkpoints.resumable(checkpoint, run_identity, run.trainable())
        if resumed:
            run.restore(resumed)
    note = relaunch_note(checkpoint) if checkpoint is not None else None
    if note is not None:
        micro.resume(note)  # restarted after running out of memory (newer than the checkpoint)
    done = resumed["step"] if resumed else 0
    log_rows, losses = (resumed["log"], resumed["losses"]) if resumed else ([], [])
    attempt = log_rows[-1]["attempt"] + 1 if log_rows else 0
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # One process writes the log; the others write nowhere.
    with open(log_path if accelerator.is_main_process else os.devnull, "w") as log, \
            Progress(desc, len(steps), "step", done, enabled=accelerator.is_main_process) as progress:
        log.writelines(json.dumps(row) + "\n" for row in log_rows)  # the steps done before resuming
        for step in range(done + 1, len(steps) + 1):
            t0 = time.perf_counter()
            if accelerator.num_processes == 1 or note is None:
                loss = micro.run(lambda size: run.step(step, size), f"step {step}")
            else:
                loss = micro.run_or_relaunch(lambda size: run.step(step, size), f"step {step}", note)
            check_finite(step, "loss", loss)
            run.update(step)
            losses.append(loss)
            rate = len(steps[step - 1]) / (time.perf_counter() - t0)
            step_lr = scheduler.get_last_lr()[0]
            # total_steps and time: `tunebench status` reads a running job's step count and ETA here.
            log_rows.append({"step": step, "total_steps": len(steps), "loss": round(loss, 5), "lr": step_lr,
                             "samples_per_s": round(rate, 1), "attempt": attempt, "time": round(time.time(), 2)})
            log.write(json.dumps(log_rows[-1]) + "\n")
            log.flush()
            accelerator.log({"loss": loss, "lr": step_lr, "samples_per_s": rate}, step=step)
            progress.update(1, {"loss": float(np.mean(losses[-10:])), "samples/s": round(rate, 1)})
            if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0 and step < len(steps):
                run.save(checkpoint, run_identity, step, log_rows, losses)
    if done < len(steps):
        check_weights(len(steps), accelerator, accelerator.unwrap_model(model))
        run.check_last_update(len(steps))
    seconds = time.perf_counter() - start
    trained = len(steps) - done
    if note is not None and accelerator.is_main_process:
        note.unlink(missing_ok=True)
    return {
        "steps": len(steps),
        "resumed_from_step": done or None,
        "checkpoint": checkpoint_note,
        "train_seconds": round(seconds, 2),
        "samples_per_s": round(trained * batches.batch_size / seconds, 1) if trained else None,
        "final_loss": float(np.mean(losses[-20:])),
        "peak_memory_mb": peak_memory_mb(),
        "peak_rss_mb": peak_rss_mb(),
        "device": str(accelerator.device),
        "num_processes": accelerator.num_processes,
        "distributed": "fsdp" if sharded else "ddp",
        "global_batch_size": batches.batch_size,
        "micro_batch_size": micro.size,
        "accumulation_steps": math.ceil(share / micro.size),
        "oom_halvings": micro.halvings,
        "num_workers": num_workers,
        "precision": precision,
        "gradient_checkpointing": gradient_checkpointing,
    }
