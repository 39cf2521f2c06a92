"""Training: encode records once, draw seeded mixed batches, optimise with accelerate.

The same loop pretrains the embedded base model and tunes any model with any method. The loss is
averaged per sample over its answer tokens, then over the batch, so long captions do not dominate
short answers. Every run writes a step log (loss, lr, samples/s) beside its output.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import resource
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from PIL import Image
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from .files import atomic_write
from .modeling import END_OF_TURN, prompt_text

ENCODE_CHUNK = 256


class Diverged(RuntimeError):
    def __init__(self, step: int, loss: float):
        super().__init__(f"loss became {loss} at step {step}")
        self.step, self.loss = step, loss


def target_text(record: dict) -> str:
    """What the model is taught to answer: the most common reference (VQA's 10 human answers),
    else the first one (the gold letter, the canonical caption)."""
    answers = record["answers"]
    if record["task_type"] == "vqa":
        return Counter(answers).most_common(1)[0][0]
    return answers[0]


@dataclass
class Encoded:
    """Token ids, the prompt length (loss starts after it), and image tensors, for N records."""

    input_ids: list[list[int]]
    prompt_lengths: list[int]
    pixel_values: torch.Tensor
    image_sizes: torch.Tensor

    def __len__(self) -> int:
        return len(self.input_ids)


def load_image(record: dict) -> Image.Image:
    return Image.open(io.BytesIO(record["image"])).convert("RGB")


def encode(records: list[dict], processor, with_targets: bool) -> Encoded:
    """Run the model's real processor once per record, in chunks (its image work dominates)."""
    tokenizer = processor.tokenizer
    ids, lengths, pixels, sizes = [], [], [], []
    for start in range(0, len(records), ENCODE_CHUNK):
        chunk = records[start:start + ENCODE_CHUNK]
        batch = processor(
            images=[load_image(r) for r in chunk],
            text=[prompt_text(processor, r["question"]) for r in chunk],
            return_tensors="pt",
            padding=True,
        )
        for row, mask, record in zip(batch["input_ids"], batch["attention_mask"], chunk):
            prompt = row[mask.bool()].tolist()
            answer = tokenizer(target_text(record) + END_OF_TURN, add_special_tokens=False)["input_ids"] if with_targets else []
            ids.append(prompt + answer)
            lengths.append(len(prompt))
        pixels.append(batch["pixel_values"])
        sizes.append(batch["image_sizes"])
    return Encoded(ids, lengths, torch.cat(pixels), torch.cat(sizes))


def collate(data: Encoded, indices: list[int], pad_id: int) -> dict:
    """Right-padded batch with labels only on answer tokens (prompt, image and padding masked)."""
    width = max(len(data.input_ids[i]) for i in indices)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), width), -100, dtype=torch.long)
    attention = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        seq = torch.tensor(data.input_ids[i])
        input_ids[row, :len(seq)] = seq
        attention[row, :len(seq)] = 1
        labels[row, data.prompt_lengths[i]:len(seq)] = seq[data.prompt_lengths[i]:]
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "pixel_values": data.pixel_values[indices],
        "image_sizes": data.image_sizes[indices],
    }


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    token_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="none"
    ).view(labels.shape)
    mask = (labels != -100).float()
    return ((token_loss * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


@dataclass(frozen=True)
class Phase:
    """`steps` steps drawing each batch from pools in fixed proportions (pool name -> fraction)."""

    steps: int
    mix: dict[str, float]


def batch_counts(mix: dict[str, float], batch_size: int) -> dict[str, int]:
    """Samples per pool in every batch, by largest remainder, so proportions hold exactly per batch."""
    total = sum(mix.values())
    raw = {k: batch_size * v / total for k, v in mix.items()}
    counts = {k: int(math.floor(x)) for k, x in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: batch_size - sum(counts.values())]:
        counts[k] += 1
    return counts


class Batches:
    """Seeded batch indices into one concatenated Encoded set, pool by pool."""

    def __init__(self, pools: dict[str, range], phases: list[Phase], batch_size: int, seed: int):
        self.pools, self.phases, self.batch_size = pools, phases, batch_size
        self.rng = random.Random(seed)

    def __iter__(self):
        for phase in self.phases:
            counts = batch_counts(phase.mix, self.batch_size)
            for _ in range(phase.steps):
                batch = []
                for pool, n in counts.items():
                    batch += self.rng.choices(self.pools[pool], k=n)
                yield batch

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)


def concat(parts: dict[str, Encoded]) -> tuple[Encoded, dict[str, range]]:
    pools, offset = {}, 0
    for name, part in parts.items():
        pools[name] = range(offset, offset + len(part))
        offset += len(part)
    merged = Encoded(
        [x for p in parts.values() for x in p.input_ids],
        [x for p in parts.values() for x in p.prompt_lengths],
        torch.cat([p.pixel_values for p in parts.values()]),
        torch.cat([p.image_sizes for p in parts.values()]),
    )
    return merged, pools


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
          checkpoint: Path | None = None, checkpoint_every: int = 0) -> dict:
    """Optimise the model's trainable parameters; returns what the run really did.

    With `checkpoint` and `checkpoint_every`, the state is saved every that many steps and a rerun
    resumes from it: the batch sequence is redrawn from its seed and the steps already done are
    skipped, so an interrupted run ends where an uninterrupted one does. The caller removes the
    checkpoint once the run's outputs are written. Under `accelerate launch` each of N processes
    takes 1/N of every global batch and gradients are averaged, so the global batch stays the same.
    """
    # cpu=True without CUDA: accelerate only takes processes started by `accelerate launch` as
    # data-parallel (gloo) on CPU when told so; on one process it changes nothing.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
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
            loss = per_sample_loss(model(**batch).logits, labels)
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
            log_rows.append({"step": step, "loss": round(global_loss, 5), "lr": scheduler.get_last_lr()[0],
                             "samples_per_s": round(rate, 1), "attempt": attempt})
            log.write(json.dumps(log_rows[-1]) + "\n")
            log.flush()
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
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
    }
