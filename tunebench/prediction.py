"""Prediction: batched greedy generation into predictions files (scoring reads them later).

Batches are sorted by prompt length and left-padded, so little compute goes to padding and every
sequence's answer starts right after its own prompt.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from .training import Encoded, encode

MAX_NEW_TOKENS = {"caption": 32, "vqa": 8, "exact": 8, "yesno": 4, "choice": 4}


def left_padded(data: Encoded, indices: list[int], pad_id: int) -> dict:
    width = max(len(data.input_ids[i]) for i in indices)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        seq = data.input_ids[i]
        input_ids[row, width - len(seq):] = torch.tensor(seq)
        attention[row, width - len(seq):] = 1
    return {"input_ids": input_ids, "attention_mask": attention,
            "pixel_values": data.pixel_values[indices], "image_sizes": data.image_sizes[indices]}


@torch.inference_mode()
def generate(model, processor, records: list[dict], batch_size: int, max_new_tokens: int,
             desc: str = "generate") -> list[str]:
    """Greedy outputs, in the order of `records`."""
    model.eval()
    tokenizer = processor.tokenizer
    data = encode(records, processor, with_targets=False)
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    outputs: list[str] = [""] * len(data)
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), desc=desc, mininterval=5):
        indices = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in left_padded(data, indices, tokenizer.pad_token_id).items()}
        generated = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = generated[:, batch["input_ids"].shape[1]:]
        for i, text in zip(indices, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            outputs[i] = text.strip()
    return outputs


def predict(model, processor, records: list[dict], batch_size: int, max_new_tokens: int | None = None,
            desc: str = "predict") -> list[dict]:
    """`max_new_tokens` overrides the task type's default (long answers: OCR-VQA's book titles)."""
    task_types = {r["task_type"] for r in records}
    max_new = max_new_tokens or max(MAX_NEW_TOKENS[t] for t in task_types)
    outputs = generate(model, processor, records, batch_size, max_new, desc)
    return [{"id": r["id"], "prompt": r["question"], "output": o} for r, o in zip(records, outputs)]
