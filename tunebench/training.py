"""Training: encode records once, draw seeded mixed batches, optimise with accelerate.

The same loop pretrains the embedded base model and tunes any model with any method. The loss is
averaged per sample over its answer tokens, then over the batch, so long captions do not dominate
short answers. Every run writes a step log (loss, lr, samples/s) beside its output.
"""

from __future__ import annotations

import functools
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
from .modeling import answer_text, prompt_text

# Processors walk every image of a call once per image (LLaVA-OneVision's token expansion):
# moderate chunks keep that cheap while still batching the image work.
ENCODE_CHUNK = 64
MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


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


TEXT_KEYS = ("input_ids", "attention_mask")


@dataclass
class Encoded:
    """Per record: token ids, the prompt length (loss starts after it), other per-token inputs some
    families need (Qwen2-VL's mm_token_type_ids), and its image tensors as the processor made them."""

    input_ids: list[list[int]]
    prompt_lengths: list[int]
    token_inputs: list[dict[str, list[int]]]
    images: list[dict[str, torch.Tensor]]

    def __len__(self) -> int:
        return len(self.input_ids)


def load_image(record: dict) -> Image.Image:
    return Image.open(io.BytesIO(record["image"])).convert("RGB")


def _split_images(batch, keys: list[str], n: int) -> list[dict[str, torch.Tensor]]:
    """One dict of image tensors per record. Most processors stack images on dim 0; Qwen2-VL
    concatenates every image's patches, counted by its (t, h, w) grid."""
    per_record = [{} for _ in range(n)]
    patches = batch["image_grid_thw"].prod(-1).tolist() if "image_grid_thw" in batch else None
    for key in keys:
        value = batch[key]
        if patches and key != "image_grid_thw" and value.shape[0] == sum(patches):
            pieces = value.split(patches)
        elif value.shape[0] == n:
            pieces = value.split(1)
        else:
            raise ValueError(f"processor output {key!r} of shape {tuple(value.shape)} does not split into {n} records")
        for record, piece in zip(per_record, pieces):
            record[key] = piece
    return per_record


def encode(records: list[dict], processor, with_targets: bool) -> Encoded:
    """Run the model's real processor once per record, in chunks (its image work dominates). The
    answer is written in the family's chat format, end-of-turn token included."""
    tokenizer = processor.tokenizer
    # Rendering the chat template is slow and a set asks few distinct questions: render each once.
    prompts = {q: prompt_text(processor, q) for q in {r["question"] for r in records}}
    answers = functools.cache(lambda question, target: tokenizer(
        answer_text(processor, question, target), add_special_tokens=False)["input_ids"])
    data = Encoded([], [], [], [])
    for start in range(0, len(records), ENCODE_CHUNK):
        chunk = records[start:start + ENCODE_CHUNK]
        batch = processor(
            images=[[load_image(r)] for r in chunk],
            text=[prompts[r["question"]] for r in chunk],
            return_tensors="pt",
            padding=True,
        )
        shape = batch["input_ids"].shape
        per_token = [k for k in batch if k not in TEXT_KEYS and batch[k].shape == shape]
        data.images += _split_images(batch, [k for k in batch if k not in TEXT_KEYS and k not in per_token], len(chunk))
        for i, record in enumerate(chunk):
            keep = batch["attention_mask"][i].bool()
            prompt = batch["input_ids"][i][keep].tolist()
            answer = answers(record["question"], target_text(record)) if with_targets else []
            data.input_ids.append(prompt + answer)
            data.prompt_lengths.append(len(prompt))
            data.token_inputs.append({k: batch[k][i][keep].tolist() + [0] * len(answer) for k in per_token})
    return data


def image_batch(data: Encoded, indices: list[int]) -> dict[str, torch.Tensor]:
    """The records' image tensors concatenated; where their shapes differ (a varying number of image
    crops) zero-padded, which these models read as padding."""
    batch = {}
    for key in data.images[indices[0]]:
        parts = [data.images[i][key] for i in indices]
        shape = [max(sizes) for sizes in zip(*(p.shape[1:] for p in parts))]
        padded = [torch.nn.functional.pad(p, [x for dim in reversed(range(1, p.dim()))
                                                for x in (0, shape[dim - 1] - p.shape[dim])]) for p in parts]
        batch[key] = torch.cat(padded)
    return batch


def padded(data: Encoded, indices: list[int], pad_id: int, side: str) -> dict[str, torch.Tensor]:
    """Token inputs padded to the longest sequence of these records only (never a global length)."""
    width = max(len(data.input_ids[i]) for i in indices)
    keys = ["input_ids", "attention_mask", *data.token_inputs[indices[0]]]
    batch = {k: torch.zeros((len(indices), width), dtype=torch.long) for k in keys}
    batch["input_ids"].fill_(pad_id)
    for row, i in enumerate(indices):
        n = len(data.input_ids[i])
        cols = slice(0, n) if side == "right" else slice(width - n, width)
        batch["input_ids"][row, cols] = torch.tensor(data.input_ids[i])
        batch["attention_mask"][row, cols] = 1
        for key, values in data.token_inputs[i].items():
            batch[key][row, cols] = torch.tensor(values)
    return batch


def collate(data: Encoded, indices: list[int], pad_id: int) -> dict:
    """Right-padded batch with labels only on answer tokens (prompt, image and padding masked)."""
    batch = padded(data, indices, pad_id, side="right")
    labels = torch.full_like(batch["input_ids"], -100)
    for row, i in enumerate(indices):
        start, end = data.prompt_lengths[i], len(data.input_ids[i])
        labels[row, start:end] = batch["input_ids"][row, start:end]
    return {**batch, "labels": labels, **image_batch(data, indices)}


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


class LengthGrouped:
    """Batches regrouped by length: every `group` consecutive batches are pooled, sorted by sequence
    length and split again, so a batch holds similar lengths and pads little; the group's batches
    are then yielded in seeded random order. Mixing fractions hold per group instead of per batch."""

    def __init__(self, batches: Batches, lengths: list[int], group: int, seed: int):
        self.batches, self.lengths, self.group = batches, lengths, group
        self.rng = random.Random(seed)
        self.total_steps, self.batch_size = batches.total_steps, batches.batch_size

    def __iter__(self):
        batches = iter(self.batches)
        while chunk := [b for _, b in zip(range(self.group), batches)]:
            pooled = sorted((i for b in chunk for i in b), key=lambda i: self.lengths[i])
            regrouped = [pooled[k:k + self.batch_size] for k in range(0, len(pooled), self.batch_size)]
            self.rng.shuffle(regrouped)
            yield from regrouped


def concat(parts: dict[str, Encoded]) -> tuple[Encoded, dict[str, range]]:
    pools, offset, merged = {}, 0, Encoded([], [], [], [])
    for name, part in parts.items():
        pools[name] = range(offset, offset + len(part))
        offset += len(part)
        for field in ("input_ids", "prompt_lengths", "token_inputs", "images"):
            getattr(merged, field).extend(getattr(part, field))
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
          checkpoint: Path | None = None, checkpoint_every: int = 0,
          precision: str = "fp32", gradient_checkpointing: bool = False) -> dict:
    """Optimise the model's trainable parameters; returns what the run really did. `precision`
    bf16/fp16 autocasts the forward pass (weights and optimizer state stay fp32).

    With `checkpoint` and `checkpoint_every`, the state is saved every that many steps and a rerun
    resumes from it: the batch sequence is redrawn from its seed and the steps already done are
    skipped, so an interrupted run ends where an uninterrupted one does. The caller removes the
    checkpoint once the run's outputs are written. Under `accelerate launch` each of N processes
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
        "precision": precision,
        "gradient_checkpointing": gradient_checkpointing,
    }
