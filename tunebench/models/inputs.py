"""Records -> model inputs through the family's real processor: token ids (the answer in the
family's chat format), per-token extras, image tensors; padded batches for training and generation."""

from __future__ import annotations

import functools
import io
from collections import Counter
from dataclasses import dataclass

import torch
from PIL import Image

from .chat import answer_text, prompt_text

# Processors walk every image of a call once per image (LLaVA-OneVision's token expansion):
# moderate chunks keep that cheap while still batching the image work.
ENCODE_CHUNK = 64


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


def concat(parts: dict[str, Encoded]) -> tuple[Encoded, dict[str, range]]:
    pools, offset, merged = {}, 0, Encoded([], [], [], [])
    for name, part in parts.items():
        pools[name] = range(offset, offset + len(part))
        offset += len(part)
        for field in ("input_ids", "prompt_lengths", "token_inputs", "images"):
            getattr(merged, field).extend(getattr(part, field))
    return merged, pools
