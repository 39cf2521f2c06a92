"""Prediction: batched greedy generation into predictions files (scoring reads them later).

Batches are sorted by prompt length and left-padded, so little compute goes to padding and every
sequence's answer starts right after its own prompt. Records stream from their split: DataLoader
workers run the processor a few batches ahead of the model. Under `accelerate launch` with N
processes, process k answers batches k, k + N, ... of the same batches one process would make, so
the gathered answers are one process's, whatever N.
"""

from __future__ import annotations

import torch
from accelerate import PartialState
from accelerate.utils import gather_object

from ..data.records import InMemory
from ..models.inputs import Batched
from ..progress import Progress
from ..train.memory import Halving

MAX_NEW_TOKENS = {"caption": 32, "vqa": 8, "exact": 8, "yesno": 4, "choice": 4}


def stop_tokens(model, tokenizer) -> list[int]:
    """The tokenizer's end of sequence and the checkpoint's own stop tokens (instruction-tuned models
    often stop on their end-of-turn token), within the vocabulary."""
    configured = model.generation_config.eos_token_id
    ids = {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
    return sorted(i for i in ids if i is not None and i < len(tokenizer))


def _answer(model, tokenizer, batch: dict, max_new_tokens: int) -> list[str]:
    device = next(model.parameters()).device
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    generated = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        use_cache=True,  # the KV cache: each new token attends to cached keys, not the whole prefix
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_tokens(model, tokenizer),
    )
    new_tokens = generated[:, batch["input_ids"].shape[1]:]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


@torch.inference_mode()
def generate(model, processor, records, batch_size: int | Halving, max_new_tokens: int,
             desc: str = "generate", num_workers: int = 0) -> list[str]:
    """Greedy outputs, in the order of `records` (a list, or a record set of tunebench.data.records).
    `batch_size` may be a Halving shared across calls: a batch that runs out of device memory is
    answered in halves, and later batches at that size."""
    model.eval()
    size = batch_size if isinstance(batch_size, Halving) else Halving(batch_size, "prediction batch")
    tokenizer = processor.tokenizer
    data = Batched(records, processor, with_targets=False)
    lengths = data.lengths()
    order = sorted(range(len(data)), key=lengths.__getitem__)
    state = PartialState()
    todo = [order[s:s + size.size] for s in range(0, len(order), size.size)][state.process_index::state.num_processes]
    answers: dict[int, str] = {}

    def answer(indices, batch, n):
        parts = [batch] if n >= len(indices) else [data[indices[j:j + n]] for j in range(0, len(indices), n)]
        return [text for part in parts for text in _answer(model, tokenizer, part, max_new_tokens)]

    with Progress(desc, len(data) // state.num_processes, "answer", enabled=state.is_main_process) as progress:
        while todo:
            for k, (indices, batch) in enumerate(zip(todo, data.loader(todo, num_workers))):
                answers.update(zip(indices, size.run(lambda n: answer(indices, batch, n), f"{desc}, batch of {len(indices)}")))
                progress.update(len(indices))
                if size.size < len(indices):  # halved: the rest in batches of the new size, from a new loader
                    todo = [b[j:j + size.size] for b in todo[k + 1:] for j in range(0, len(b), size.size)]
                    break
            else:
                todo = []
    if state.num_processes > 1:
        answers = {i: text for part in gather_object([answers]) for i, text in part.items()}
    return [answers[i] for i in range(len(data))]


def predict(model, processor, records, batch_size: int | Halving, max_new_tokens: int | None = None,
            desc: str = "predict", num_workers: int = 0) -> list[dict]:
    """`max_new_tokens` overrides the task type's default (long answers: OCR-VQA's book titles)."""
    records = InMemory(records) if isinstance(records, list) else records
    task_types = {r["task_type"] for r in records.texts}
    max_new = max_new_tokens or max(MAX_NEW_TOKENS[t] for t in task_types)
    outputs = generate(model, processor, records, batch_size, max_new, desc, num_workers)
    return [{"id": r["id"], "prompt": r["question"], "output": o} for r, o in zip(records.texts, outputs)]
