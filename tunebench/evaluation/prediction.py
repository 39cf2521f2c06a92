"""Prediction: batched greedy generation into predictions files (scoring reads them later).

Batches are sorted by prompt length and left-padded, so little compute goes to padding and every
sequence's answer starts right after its own prompt.
"""

from __future__ import annotations

import torch

from ..models.inputs import encode, image_batch, padded
from ..progress import Progress

MAX_NEW_TOKENS = {"caption": 32, "vqa": 8, "exact": 8, "yesno": 4, "choice": 4}


def stop_tokens(model, tokenizer) -> list[int]:
    """The tokenizer's end of sequence and the checkpoint's own stop tokens (instruction-tuned models
    often stop on their end-of-turn token), within the vocabulary."""
    configured = model.generation_config.eos_token_id
    ids = {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
    return sorted(i for i in ids if i is not None and i < len(tokenizer))


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
    progress = Progress(desc, len(order), "answer")
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        batch = padded(data, indices, tokenizer.pad_token_id, side="left") | image_batch(data, indices)
        batch = {k: v.to(device) for k, v in batch.items()}
        generated = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=True,  # the KV cache: each new token attends to cached keys, not the whole prefix
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stop_tokens(model, tokenizer),
        )
        new_tokens = generated[:, batch["input_ids"].shape[1]:]
        for i, text in zip(indices, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            outputs[i] = text.strip()
        progress.update(len(indices))
    progress.close()
    return outputs


def predict(model, processor, records: list[dict], batch_size: int, max_new_tokens: int | None = None,
            desc: str = "predict") -> list[dict]:
    """`max_new_tokens` overrides the task type's default (long answers: OCR-VQA's book titles)."""
    task_types = {r["task_type"] for r in records}
    max_new = max_new_tokens or max(MAX_NEW_TOKENS[t] for t in task_types)
    outputs = generate(model, processor, records, batch_size, max_new, desc)
    return [{"id": r["id"], "prompt": r["question"], "output": o} for r, o in zip(records, outputs)]
