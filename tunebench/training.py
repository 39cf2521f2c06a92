"""Training: encode records once, draw seeded mixed batches, optimise with accelerate.

The same loop pretrains the embedded base model and tunes any model with any method. The loss is
averaged per sample over its answer tokens, then over the batch, so long captions do not dominate
short answers. Every run writes a step log (loss, lr, samples/s) beside its output.
"""

from __future__ import annotations

import io
import json
import math
import random
import resource
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from PIL import Image
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

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


def batch_loss(model, batch: dict, labels: torch.Tensor) -> torch.Tensor:
    # Prompt tuning prepends virtual tokens: the logits of the real tokens are the last ones.
    return per_sample_loss(model(**batch).logits[:, -labels.shape[1]:], labels)


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


def train(model, data: Encoded, batches: Batches, pad_id: int, lr: float, warmup: int,
          log_path: Path, max_grad_norm: float = 1.0, weight_decay: float = 0.0, desc: str = "train") -> dict:
    """Optimise the model's trainable parameters; returns what the run really did."""
    accelerator = Accelerator()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, batches.total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    losses = []
    with open(log_path, "w") as log, tqdm(total=batches.total_steps, desc=desc, mininterval=5) as bar:
        for step, indices in enumerate(batches, start=1):
            t0 = time.perf_counter()
            # Each process takes its share of the global batch.
            mine = indices[accelerator.process_index::accelerator.num_processes]
            batch = {k: v.to(accelerator.device) for k, v in collate(data, mine, pad_id).items()}
            labels = batch.pop("labels")
            loss = batch_loss(model, batch, labels)
            if not torch.isfinite(loss):
                raise Diverged(step, loss.item())
            accelerator.backward(loss)
            if max_grad_norm:
                accelerator.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            rate = len(indices) / (time.perf_counter() - t0)
            log.write(json.dumps({"step": step, "loss": round(losses[-1], 5),
                                  "lr": scheduler.get_last_lr()[0], "samples_per_s": round(rate, 1)}) + "\n")
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    seconds = time.perf_counter() - start
    return {
        "steps": batches.total_steps,
        "train_seconds": round(seconds, 2),
        "samples_per_s": round(batches.total_steps * batches.batch_size / seconds, 1),
        "final_loss": float(np.mean(losses[-20:])),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "device": str(accelerator.device),
        "num_processes": accelerator.num_processes,
    }
